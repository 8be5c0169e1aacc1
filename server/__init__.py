"""lipstream.server"""
