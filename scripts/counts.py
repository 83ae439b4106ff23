# -*- coding: utf-8 -*-
# Copyright: lxcex.share contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How many tests a step of scripts/test.sh ran: 'PASSED FAILED SKIPPED' from its log and exit status.

    python scripts/counts.py STEP RC LOG

- sanity, matrix: each "Running sanity test 'NAME'" of ansible-test is a test; those it lists as failed
  ("The N sanity test(s) listed below (out of M) failed") are failures, "Skipping sanity test" a skip.
- units: pytest's closing line.
- integration: the 'N passed, M failed, K skipped' line of each scenario target (the lab harness), and
  one test for each target that prints none (a playbook target): failed when ansible-test lists it as failed.
- kernels: scripts/kernels.py's closing line over every scenario of every guest.
- any other step: one test, passed when the step exited 0.
A step that exited non-zero counts at least one failure; one that exited 0 and counted a failure is made
to fail too (printed as such).
"""

from __future__ import absolute_import, division, print_function

import re
import sys

COUNTS = re.compile(r'^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\b')
PYTEST = re.compile(r'^=+ (.*) in [0-9.]+s')


def sanity(lines):
    ran = sum(1 for l in lines if re.match(r'^Running sanity test ["\x27]', l))
    failed = 0
    for l in lines:
        m = re.search(r'The (\d+) sanity test\(s\) listed below \(out of (\d+)\) failed', l)
        if m:
            failed += int(m.group(1))
    skipped = sum(1 for l in lines if re.match(r'^(WARNING: )?Skipping sanity test ["\x27]', l))
    return ran - failed, failed, skipped


def units(lines):
    for l in reversed(lines):
        m = PYTEST.match(l)
        if m:
            found = dict((k, int(n)) for n, k in re.findall(r'(\d+) (passed|failed|skipped|error|errors)', m.group(1)))
            return (found.get('passed', 0), found.get('failed', 0) + found.get('error', 0) + found.get('errors', 0),
                    found.get('skipped', 0))
    return None


def integration(lines):
    p = f = k = 0
    target, counted = None, False
    targets = []
    for l in lines:
        m = re.match(r'^Running (\S+) integration test (role|script)', l)
        if m:
            if target and not counted:
                targets.append(target)
            target, counted = m.group(1), False
            continue
        m = COUNTS.match(l)
        if m:
            counted = True
            p, f, k = p + int(m.group(1)), f + int(m.group(2)), k + int(m.group(3) or 0)
    if target and not counted:
        targets.append(target)
    failed_targets = set()
    for i, l in enumerate(lines):
        if re.search(r'integration test\(s\) listed below \(out of \d+\) failed', l):
            failed_targets.update(x.strip() for x in lines[i + 1:] if x.strip() and ' ' not in x.strip())
    for t in targets:
        if t in failed_targets:
            f += 1
        else:
            p += 1
    return p, f, k


def last_counts(lines):
    for l in reversed(lines):
        m = COUNTS.match(l)
        if m:
            return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return None


def main():
    step, rc, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = [l.rstrip('\n') for l in f]
    if step in ('sanity', 'matrix'):
        counts = sanity(lines)
    elif step == 'units':
        counts = units(lines)
    elif step == 'integration':
        counts = integration(lines)
    elif step == 'kernels':
        counts = last_counts(lines)
    else:
        counts = None
    if not counts or sum(counts) == 0:
        counts = (1, 0, 0) if rc == 0 else (0, 1, 0)
    p, f, k = counts
    if rc != 0 and f == 0:
        f = 1
    print('%d %d %d' % (p, f, k))
    return 0


if __name__ == '__main__':
    sys.exit(main())
