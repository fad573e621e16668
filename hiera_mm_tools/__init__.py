"""The command-line tools' own code: what ``tools/`` runs, apart from the library.

It imports ``hiera_mm``; ``hiera_mm`` never imports it. Each subpackage imports its framework
only where a tool needs one.
"""
