# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pack the collection's module_utils into one zip that the hook program puts on sys.path.

    pack_hook_code.py MODULE_UTILS_DIR DEST

The zip holds only the .py files, byte for byte the code the modules run
(never .pyc files), under ansible_collections/lxcex/share/plugins/module_utils,
with fixed timestamps and order: the same code always gives the same bytes,
so the role transfers it to a host only when it changed.  Prints its sha256.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import os
import sys
import zipfile

PACKAGE = 'ansible_collections/lxcex/share/plugins/module_utils'
STAMP = (1980, 1, 1, 0, 0, 0)


def _entry(z, name, data):
    info = zipfile.ZipInfo(name, date_time=STAMP)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def pack(src, dest):
    names = sorted(n for n in os.listdir(src) if n.endswith('.py') and os.path.isfile(os.path.join(src, n)))
    tmp = dest + '.tmp'
    with zipfile.ZipFile(tmp, 'w') as z:
        # Regular packages (zipimport of namespace packages differs across Pythons).
        parts = PACKAGE.split('/')
        for depth in range(1, len(parts) + (0 if '__init__.py' in names else 1)):
            _entry(z, '/'.join(parts[:depth] + ['__init__.py']), b'')
        for name in names:
            with open(os.path.join(src, name), 'rb') as f:
                _entry(z, '%s/%s' % (PACKAGE, name), f.read())
    os.rename(tmp, dest)
    with open(dest, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


if __name__ == '__main__':
    print(pack(sys.argv[1], sys.argv[2]))
