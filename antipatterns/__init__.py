"""The catalogue: one module per anti-pattern, named by its id.

Each module's docstring is its lesson (title line, then the sections listed in
`pglab.lab.core.catalogue.LESSON_SECTIONS`), and its module-level constants are its metadata.
Discovery (`pglab.lab.core.catalogue.load_catalogue`) finds the modules; nothing lists them by hand.
"""
