from medrival.cli.app import main

main()
