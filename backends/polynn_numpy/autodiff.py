"""A small reverse-mode autodiff over NumPy arrays, so functions written with polynn.ops train on NumPy.

A Tensor holds a value and, when it came from an op on Tensors, its parents and a vector-Jacobian
product. `gradient(output, inputs, seed)` walks the graph backwards once, in reverse topological
order, summing the contributions to each Tensor.
"""

from __future__ import annotations

import numpy as np


class Tensor:
    """An array that remembers how it was computed."""

    __slots__ = ("value", "parents", "vjp")
    # Make NumPy defer to Tensor's reflected operators (ndarray + Tensor -> Tensor.__radd__).
    __array_ufunc__ = None

    def __init__(self, value, parents=(), vjp=None):
        self.value = np.asarray(value)
        self.parents = parents
        self.vjp = vjp

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Tensor({self.value!r})"

    def __add__(self, other): return add(self, other)
    def __radd__(self, other): return add(other, self)
    def __sub__(self, other): return subtract(self, other)
    def __rsub__(self, other): return subtract(other, self)
    def __mul__(self, other): return multiply(self, other)
    def __rmul__(self, other): return multiply(other, self)
    def __truediv__(self, other): return divide(self, other)
    def __rtruediv__(self, other): return divide(other, self)
    def __pow__(self, other): return power(self, other)
    def __rpow__(self, other): return power(other, self)
    def __neg__(self): return multiply(self, -1.0)
    def __pos__(self): return self
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __getitem__(self, index): return getitem(self, index)
    # Comparisons give plain boolean arrays: they have no gradient.
    def __lt__(self, other): return value_of(self) < value_of(other)
    def __le__(self, other): return value_of(self) <= value_of(other)
    def __gt__(self, other): return value_of(self) > value_of(other)
    def __ge__(self, other): return value_of(self) >= value_of(other)
    __hash__ = object.__hash__


def value_of(x):
    return x.value if isinstance(x, Tensor) else x


def traced(*xs) -> bool:
    return any(isinstance(x, Tensor) for x in xs)


def unbroadcast(g, shape):
    """Sum g over the axes broadcasting added or stretched, back to `shape`."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def node(value, parents, vjp):
    """A Tensor for `value` whose gradient flows to the Tensor parents through vjp(g) -> grads."""
    return Tensor(value, tuple(parents), vjp)


def _binary(x, y, value, dx, dy):
    """A two-input op; dx(g) and dy(g) give the gradients before unbroadcasting."""
    xs, ys = np.shape(value_of(x)), np.shape(value_of(y))
    return node(value, (x, y), lambda g: (unbroadcast(dx(g), xs), unbroadcast(dy(g), ys)))


def add(x, y):
    if not traced(x, y):
        return np.add(x, y)
    return _binary(x, y, value_of(x) + value_of(y), lambda g: g, lambda g: g)


def subtract(x, y):
    if not traced(x, y):
        return np.subtract(x, y)
    return _binary(x, y, value_of(x) - value_of(y), lambda g: g, lambda g: -g)


def multiply(x, y):
    if not traced(x, y):
        return np.multiply(x, y)
    a, b = value_of(x), value_of(y)
    return _binary(x, y, a * b, lambda g: g * b, lambda g: g * a)


def divide(x, y):
    if not traced(x, y):
        return np.divide(x, y)
    a, b = value_of(x), value_of(y)
    return _binary(x, y, a / b, lambda g: g / b, lambda g: -g * a / (b * b))


def power(x, y):
    if not traced(x, y):
        return np.power(x, y)
    a, b = value_of(x), value_of(y)
    out = np.power(a, b)

    def d_base(g):
        return g * b * np.power(a, b - 1)

    def d_exponent(g):
        # d/db a**b = a**b log(a); only defined for a > 0, 0 elsewhere (as the engines at a == 0 with b > 0).
        return g * out * np.log(np.where(a > 0, a, 1))

    return _binary(x, y, out, d_base, d_exponent)


def matmul(x, y):
    if not traced(x, y):
        return np.matmul(x, y)
    a, b = value_of(x), value_of(y)

    def dx(g):
        return g @ np.swapaxes(b, -1, -2) if b.ndim > 1 else np.multiply.outer(g, b)

    def dy(g):
        return np.swapaxes(a, -1, -2) @ g if a.ndim > 1 else np.multiply.outer(a, g)

    return _binary(x, y, a @ b, dx, dy)


def unary(x, value, derivative):
    """An element-wise op with d(out)/d(x) = derivative (an array, or a function of g)."""
    if callable(derivative):
        return node(value, (x,), lambda g: (derivative(g),))
    return node(value, (x,), lambda g: (g * derivative,))


def getitem(x, index):
    a = value_of(x)

    def vjp(g):
        out = np.zeros_like(a)
        np.add.at(out, index, g)
        return (out,)

    return node(a[index], (x,), vjp)


class _Slices:
    """Gradients of some of an unstacked array's slices, by index: what `unstack`'s slices send the
    array, added up by `+` as `gradient` sums contributions, and made one array once, by the
    array's own node (one zero array for all the slices, not one each)."""

    __slots__ = ("by_index",)
    __array_ufunc__ = None

    def __init__(self, by_index):
        self.by_index = by_index

    def __add__(self, other):
        # Each slice's node sends its gradient once per pass, so no index comes twice.
        self.by_index.update(other.by_index)
        return self

    def dense(self, shape, dtype, axis):
        out = np.zeros(shape, dtype=dtype)
        moved = np.moveaxis(out, axis, 0)
        for index, g in self.by_index.items():
            moved[index] = g
        return out


def unstack(x, axis):
    """x's slices along axis (views), their gradients gathered into one array of x's shape."""
    a = value_of(x)
    slices = list(np.moveaxis(a, axis, 0))
    if not traced(x):
        return slices
    whole = node(a, (x,), lambda g: (g.dense(a.shape, a.dtype, axis),))
    return [node(piece, (whole,), lambda g, i=i: (_Slices({i: g}),)) for i, piece in enumerate(slices)]


def gradient(output, inputs, seed=None):
    """d(output)/d(input) for each Tensor in `inputs`, seeded with `seed` (ones by default)."""
    order, seen = [], set()
    stack = [(output, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        for parent in t.parents:
            if isinstance(parent, Tensor) and id(parent) not in seen:
                stack.append((parent, False))
    grads = {id(output): np.ones_like(output.value) if seed is None else np.asarray(seed)}
    for t in reversed(order):
        g = grads.pop(id(t), None) if t.vjp is not None else grads.get(id(t))
        if g is None or t.vjp is None:
            continue
        for parent, pg in zip(t.parents, t.vjp(g)):
            if isinstance(parent, Tensor):
                previous = grads.get(id(parent))
                grads[id(parent)] = pg if previous is None else previous + pg
    return [np.broadcast_to(grads.get(id(x), np.zeros_like(x.value)), x.shape).astype(x.dtype) for x in inputs]


def vjp(function, arrays, seed):
    """Gradients of sum(seed * function(*arrays)) with respect to each array."""
    inputs = [Tensor(a) for a in arrays]
    out = function(*inputs)
    if not isinstance(out, Tensor):  # the function ignored its inputs: a constant
        return [np.zeros_like(np.asarray(a)) for a in arrays]
    return gradient(out, inputs, np.broadcast_to(seed, out.shape))
