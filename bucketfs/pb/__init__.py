"""Generated protocol stubs: run ``python protos/generate.py``, never edit."""
