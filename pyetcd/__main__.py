"""`python -m pyetcd` runs the etcd server, like the `etcd` command."""
from pyetcd.etcdmain import main

main()
