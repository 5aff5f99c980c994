from pyetcd.etcdutl import main

main()
