from traductor.cli import main

raise SystemExit(main())
