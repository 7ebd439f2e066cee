"""``make chaos``: attack a private copy of Confide and count what it lost (issue 7).

See docs/reliability.md for what each figure means and the latest figures.
"""
