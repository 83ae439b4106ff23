# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lxcex.share.plugins.module_utils._mountinfo import MountTable, parse, parse_line, unescape

SAMPLE = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
    "40 22 0:50 / /mnt/share-thunks rw,relatime shared:7 master:3 - tmpfs tmpfs rw,size=1024k,mode=711\n"
    "41 40 254:0 /home/alice/my\\040share /mnt/share-thunks/bob/home/bob/with\\040space ro,relatime,idmapped shared:7 - ext4 /dev/vda rw\n"
    "42 41 254:0 /tab\\011and\\012newline /mnt/share-thunks/bob/home/bob/with\\040space rw,relatime,idmapped - ext4 /dev/vda rw\n"
    "43 22 0:51 / /back\\134slash rw - tmpfs none rw\n"
)


def test_unescape():
    assert unescape('a\\040b\\011c\\012d\\134e') == 'a b\tc\nd\\e'
    assert unescape('plain') == 'plain'


def test_parse_line_fields():
    e = parse_line(SAMPLE.splitlines()[1])
    assert (e.mount_id, e.parent_id, e.dev) == (40, 22, (0, 50))
    assert e.mount_point == '/mnt/share-thunks'
    assert e.optional == ('shared:7', 'master:3')
    assert e.fstype == 'tmpfs' and e.source == 'tmpfs'
    assert 'mode=711' in e.super_options
    assert not e.idmapped and not e.readonly


def test_escaped_paths_and_flags():
    entries = parse(SAMPLE)
    e = entries[2]
    assert e.root == '/home/alice/my share'
    assert e.mount_point == '/mnt/share-thunks/bob/home/bob/with space'
    assert e.idmapped and e.readonly
    assert entries[3].root == '/tab\tand\nnewline'
    assert entries[4].mount_point == '/back\\slash'


def test_no_optional_fields():
    e = parse_line('50 22 0:60 / /x rw - tmpfs t rw')
    assert e.optional == () and e.fstype == 'tmpfs'


def test_top_of_a_stack_is_the_one_on_top():
    table = MountTable(parse(SAMPLE))
    top = table.top('/mnt/share-thunks/bob/home/bob/with space')
    assert top.mount_id == 42
    assert [e.mount_id for e in table.stack('/mnt/share-thunks/bob/home/bob/with space')] == [41, 42]
    assert table.top('/nothing') is None


def test_containing_and_below():
    table = MountTable(parse(SAMPLE))
    assert table.containing('/mnt/share-thunks/bob/x').mount_id == 40
    assert table.containing('/srv/data').mount_id == 22
    assert table.below('/mnt/share-thunks') == ['/mnt/share-thunks/bob/home/bob/with space']


def test_remove_and_add_update_the_index():
    table = MountTable(parse(SAMPLE))
    removed = table.remove('/mnt/share-thunks/bob/home/bob/with space')
    assert removed.mount_id == 42
    assert table.top('/mnt/share-thunks/bob/home/bob/with space').mount_id == 41
    table.add(removed)
    assert table.top('/mnt/share-thunks/bob/home/bob/with space').mount_id == 42


def test_reads_real_mountinfo():
    table = MountTable.read()
    assert table.containing('/') is not None
