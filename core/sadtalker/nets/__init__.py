"""Plain ``nn.Module`` s of the SadTalker audio side. No file I/O, no devices: wrappers own those."""
