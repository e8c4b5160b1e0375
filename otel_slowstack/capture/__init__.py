"""Reading a stack from outside its thread: frames, the entry, owners, locals, formatting."""
