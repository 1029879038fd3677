"""``python -m eslhook.fakeswitch CAPTURE... [options]``"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from eslhook.fakeswitch.cli import main  # noqa: E402

sys.exit(main())
