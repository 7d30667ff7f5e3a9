"""Which elements land in the first k places of libstdc++'s std::sort (descending by value), following
introsort's exact steps only into the partition that holds place k (which elements end up before k
does not depend on how the other partitions are ordered).

mergekit's magnitude sparsification (ties, breadcrumbs) keeps torch.argsort(|delta|, descending=True)[:k],
and torch's CPU argsort is that std::sort of (value, index) pairs. In bf16 and f16 many |delta| tie at
the k-th value, and which of them are kept follows the sort's steps, not index order. This was the plan
that Alloy's methods/torch-sort-ties.ts follows, checked here against torch:

    /tmp/mkvenv/bin/python tools/oracle/torch_argsort_ties.py   # torch installed (e.g. with mergekit)
"""
import math
import numpy as np

def kept_set(values, k):
    v = list(map(float, values))
    idx = list(range(len(v)))
    n = len(v)
    def comp(i, j):  # element at i sorts before element at j
        return v[i] > v[j]
    def swap(i, j):
        v[i], v[j] = v[j], v[i]
        idx[i], idx[j] = idx[j], idx[i]
    def median_to_first(result, a, b, c):
        if comp(a, b):
            if comp(b, c): swap(result, b)
            elif comp(a, c): swap(result, c)
            else: swap(result, a)
        elif comp(a, c): swap(result, a)
        elif comp(b, c): swap(result, c)
        else: swap(result, b)
    def unguarded_partition(first, last, pivot):
        while True:
            while comp(first, pivot): first += 1
            last -= 1
            while comp(pivot, last): last -= 1
            if not first < last: return first
            swap(first, last)
            first += 1
    def heap_sort(first, last):
        # std::make_heap then std::sort_heap on [first, last) with comp
        def adjust(top_base, hole, length, val_v, val_i):
            top = hole
            second = hole
            while second < (length - 1) // 2:
                second = 2 * (second + 1)
                if comp(top_base + second, top_base + second - 1): second -= 1
                v[top_base + hole], idx[top_base + hole] = v[top_base + second], idx[top_base + second]
                hole = second
            if (length & 1) == 0 and second == (length - 2) // 2:
                second = 2 * (second + 1)
                v[top_base + hole], idx[top_base + hole] = v[top_base + second - 1], idx[top_base + second - 1]
                hole = second - 1
            # push_heap
            parent = (hole - 1) // 2
            while hole > top and v[top_base + parent] > val_v:
                v[top_base + hole], idx[top_base + hole] = v[top_base + parent], idx[top_base + parent]
                hole = parent
                parent = (hole - 1) // 2
            v[top_base + hole], idx[top_base + hole] = val_v, val_i
        length = last - first
        if length >= 2:
            parent = (length - 2) // 2
            while True:
                adjust(first, parent, length, v[first + parent], idx[first + parent])
                if parent == 0: break
                parent -= 1
        while last - first > 1:
            last -= 1
            val_v, val_i = v[last], idx[last]
            v[last], idx[last] = v[first], idx[first]
            adjust(first, 0, last - first, val_v, val_i)
    def insertion_sort(first, last):
        for i in range(first + 1, last):
            val_v, val_i = v[i], idx[i]
            j = i
            while j > first and val_v > v[j - 1]:
                v[j], idx[j] = v[j - 1], idx[j - 1]
                j -= 1
            v[j], idx[j] = val_v, val_i
    first, last = 0, n
    depth = 2 * int(math.floor(math.log2(n))) if n > 0 else 0
    while last - first > 16:
        if depth == 0:
            heap_sort(first, last)
            first = last  # sorted: nothing left
            break
        depth -= 1
        mid = first + (last - first) // 2
        median_to_first(first, first + 1, mid, last - 1)
        cut = unguarded_partition(first + 1, last, first)
        if cut > k: last = cut            # [cut, last) lies past k
        elif cut < k: first = cut         # [first, cut) lies before k: recurse right
        else: first = last = cut; break
    if last - first > 0: insertion_sort(first, last)
    return set(idx[:k])

if __name__ == "__main__":
    import torch
    torch.manual_seed(0)
    for n in (100, 5000, 100003, 300000):
        x = (torch.randn(n) * 0.02).to(torch.float16).abs().float()
        k = int(0.5 * n)
        want = set(torch.argsort(x, descending=True)[:k].tolist())
        got = kept_set(x.numpy(), k)
        print(n, "same kept set" if got == want else f"differ: {len(got ^ want)} elements")
