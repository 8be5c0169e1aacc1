"""lipstream.pipeline.metrics"""
