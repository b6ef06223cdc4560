"""Pages and htmx fragments, one module per page group. Views stay thin: they check access, validate,
and hand off to the pipeline and the services. Every object a user reaches goes through jobs.access
(`common.get_job`, `common.get_dataset`), so a stranger's id answers 404.
"""
