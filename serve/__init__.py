"""``sganon serve``: a local web page to anonymize photos and videos and inspect the result.

The app (:mod:`.app`, FastAPI) needs the ``serve`` extra; it runs the CLI's pipeline through
:mod:`.pipeline_adapter` only. Importing this package imports neither FastAPI nor the pipeline.
"""
