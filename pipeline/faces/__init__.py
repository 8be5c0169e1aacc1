"""lipstream.pipeline.faces"""
