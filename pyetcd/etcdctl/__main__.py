from pyetcd.etcdctl import main

main()
