"""Small shared pieces (networks, buffers, normalizers, seeding, run directories).

Nothing in here imports the rest of robustrl.
"""
