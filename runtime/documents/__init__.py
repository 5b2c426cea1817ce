"""Document translation that keeps the format (`traductor translate-file`, the server's
/translate_file): formats read files into paragraphs of runs, the core translates them."""
