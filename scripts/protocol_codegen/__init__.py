"""The protocol code generator behind ``scripts/generate_protocol.py`` (its docstring describes the
generated code and this package's modules); run that script, not this package."""
