"""lipstream.pipeline.jobs"""
