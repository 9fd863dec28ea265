from hdrvid.cli import main

main()
