"""etcd's v2 store: a hierarchical tree of files and directories with its own index, TTLs,
an event history and watchers. Pure (no I/O, no clock of its own): the server feeds it
requests from the Raft log and the times they carry."""
