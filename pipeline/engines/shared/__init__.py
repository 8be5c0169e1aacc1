"""lipstream.pipeline.engines.shared"""
