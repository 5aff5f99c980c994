"""Go 1.16's sort.Sort (the unstable introsort etcd 3.5.1 was built with).

etcd sorts Range results with it, so keys that tie on the sort target (same version, same
value...) come out in the order this particular algorithm leaves them. Python's stable sort
would order ties differently, which clients can see; hence the same algorithm here: quicksort
with median-of-three / ninther pivots, heapsort past a depth limit, and a gap-6 shell pass plus
insertion sort for runs of at most 12.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def go_sort(data: list[T], less: Callable[[T, T], bool]) -> None:
    """Sort ``data`` in place exactly as Go 1.16's sort.Sort would."""
    _Sorter(data, less).sort()


class _Sorter:
    def __init__(self, data: list, less: Callable) -> None:
        self.d = data
        self.lt = less

    def less(self, i: int, j: int) -> bool:
        return self.lt(self.d[i], self.d[j])

    def swap(self, i: int, j: int) -> None:
        d = self.d
        d[i], d[j] = d[j], d[i]

    def sort(self) -> None:
        n = len(self.d)
        self.quick(0, n, 2 * n.bit_length())

    def insertion(self, a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and self.less(j, j - 1):
                self.swap(j, j - 1)
                j -= 1

    def sift_down(self, lo: int, hi: int, first: int) -> None:
        root = lo
        while True:
            child = 2 * root + 1
            if child >= hi:
                return
            if child + 1 < hi and self.less(first + child, first + child + 1):
                child += 1
            if not self.less(first + root, first + child):
                return
            self.swap(first + root, first + child)
            root = child

    def heap(self, a: int, b: int) -> None:
        hi = b - a
        for i in range((hi - 1) // 2, -1, -1):
            self.sift_down(i, hi, a)
        for i in range(hi - 1, -1, -1):
            self.swap(a, a + i)
            self.sift_down(0, i, a)

    def median3(self, m1: int, m0: int, m2: int) -> None:
        if self.less(m1, m0):
            self.swap(m1, m0)
        if self.less(m2, m1):
            self.swap(m2, m1)
            if self.less(m1, m0):
                self.swap(m1, m0)

    def pivot(self, lo: int, hi: int) -> tuple[int, int]:
        m = (lo + hi) >> 1
        if hi - lo > 40:
            s = (hi - lo) // 8
            self.median3(lo, lo + s, lo + 2 * s)
            self.median3(m, m - s, m + s)
            self.median3(hi - 1, hi - 1 - s, hi - 1 - 2 * s)
        self.median3(lo, m, hi - 1)
        # data[lo] is the pivot; [lo+1, a) < pivot, [a, b) <= pivot, [c, hi-1) > pivot
        p = lo
        a, c = lo + 1, hi - 1
        while a < c and self.less(a, p):
            a += 1
        b = a
        while True:
            while b < c and not self.less(p, b):
                b += 1
            while b < c and self.less(p, c - 1):
                c -= 1
            if b >= c:
                break
            self.swap(b, c - 1)
            b += 1
            c -= 1
        protect = hi - c < 5
        if not protect and hi - c < (hi - lo) // 4:
            dups = 0
            if not self.less(p, hi - 1):
                self.swap(c, hi - 1)
                c += 1
                dups += 1
            if not self.less(b - 1, p):
                b -= 1
                dups += 1
            if not self.less(m, p):
                self.swap(m, b - 1)
                b -= 1
                dups += 1
            protect = dups > 1
        if protect:
            # many elements equal the pivot: gather them in [b, c)
            while True:
                while a < b and not self.less(b - 1, p):
                    b -= 1
                while a < b and self.less(a, p):
                    a += 1
                if a >= b:
                    break
                self.swap(a, b - 1)
                a += 1
                b -= 1
        self.swap(p, b - 1)
        return b - 1, c

    def quick(self, a: int, b: int, depth: int) -> None:
        while b - a > 12:
            if depth == 0:
                self.heap(a, b)
                return
            depth -= 1
            mlo, mhi = self.pivot(a, b)
            if mlo - a < b - mhi:
                self.quick(a, mlo, depth)
                a = mhi
            else:
                self.quick(mhi, b, depth)
                b = mlo
        if b - a > 1:
            for i in range(a + 6, b):
                if self.less(i, i - 6):
                    self.swap(i, i - 6)
            self.insertion(a, b)
