"""lipstream.stream"""
