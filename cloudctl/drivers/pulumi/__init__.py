"""The Pulumi driver: runs the ``infra/`` program's stacks through the Pulumi Automation API.

Only this package imports the Pulumi SDK inside cloudctl. ``automation`` holds the detail: one
stack per center, a local file backend by default, and a missing engine reported as
``errors.BackendUnavailable`` (exit 3) before the Automation API is touched.
"""
