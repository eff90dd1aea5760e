"""The activator: routes, holds and releases requests for revisions (built in a later issue)."""
