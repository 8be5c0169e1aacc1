"""lipstream.pipeline"""
