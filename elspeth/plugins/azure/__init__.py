"""Azure plugins shipped with elspeth: Blob Storage source and sink, Azure OpenAI transforms and aggregates.

Their SDKs are the optional extra `elspeth[azure]`; the plugins are always registered (so `elspeth plugins`
lists them) and import the SDKs only when a pipeline uses them.
"""
