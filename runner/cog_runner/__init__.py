"""The Python runner of cog-server: imports the model and runs setup/predict/train.

Started as `python -m cog_runner --socket PATH ...`; speaks the runner protocol
(proto/cog/v1/runner.proto) over that socket. Standard library only.
"""
