"""The pipeline stages, each a function of files to files: analyze, shake, lock, render, compile
(with its toolchain and builder base), image; and export, the portable workflow made from the
same analysed tree. The graph (``rules.graph``) decides when each runs."""
