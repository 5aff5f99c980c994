"""Drop-in APIs of other etcd client libraries on top of pyetcd's client (``compat.etcd3``)."""
