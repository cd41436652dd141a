"""The ``cloudctl`` command line: thin, no business rules; it calls ``cloudctl.services``."""
