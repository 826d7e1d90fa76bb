"""Studies: study files (``medrival.study.spec``) and their expansion into cells. Imports nothing heavy here."""
