"""The app's forms, by page group: uploads (a table and how to read it), jobs (describing a job),
keys (the admins' key form), people (people, teams, model prices); common holds what they share.
Every message names the field at fault."""
