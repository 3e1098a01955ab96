"""Pictures (issue 12): the unrolled graph as DOT text with its paths highlighted (checked as
text, and against the paths the engine enumerates), rendered by Graphviz; bad requests are one
sentence each."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbptt.cli import main
from symbptt.engine.compile import compile_paths
from symbptt.engine.derivatives import Derivation, derive
from symbptt.engine.graph import unroll
from symbptt.models import GRU, LSTM, VANILLA
from symbptt.models.dims import Dims
from symbptt.pictures.contributions import components, contributions
from symbptt.pictures.graph import graph_figure, render
from symbptt.pictures.notation import plain

EDGE = re.compile(r'^  "([^"]+)" -> "([^"]+)" \[(.*)\];$', re.M)


def _paths(spec, T, wrt):
    graph = unroll(Dims(N=1, D=1, H=1, C=2, T=T), spec=spec, max_seconds=None)
    return Derivation(graph, [], [], {}).paths(wrt)


def _highlighted(dot):
    return {(a, b) for a, b, attrs in EDGE.findall(dot) if "#c0392b" in attrs}


@pytest.mark.parametrize(
    "spec, T, wrt",
    [(VANILLA, 3, "W_h"), (VANILLA, 2, "x"), (VANILLA, 3, "V"), (LSTM, 2, "W_h"), (GRU, 2, "b_h")],
)
def test_the_highlighted_edges_are_the_union_of_the_enumerated_paths(spec, T, wrt):
    paths = _paths(spec, T, wrt)
    figure = graph_figure(spec, T, wrt)
    assert figure.paths == len(paths)
    want = {(a, b) for p in paths for a, b in zip(p.nodes, p.nodes[1:])}
    assert _highlighted(figure.dot) == want


@pytest.mark.parametrize("through, to", [("h_2", None), (None, "L_3"), ("a_2", "L_3")])
def test_paths_through_a_node_or_to_one_loss_term(through, to):
    paths = [
        p
        for p in _paths(VANILLA, 4, "W_h")
        if (through is None or through in p.nodes) and (to is None or to in p.nodes)
    ]
    figure = graph_figure(VANILLA, 4, "W_h", through=through, to=to)
    assert figure.paths == len(paths) > 0
    cut = [p.nodes if to is None else p.nodes[: p.nodes.index(to) + 1] for p in paths]
    assert _highlighted(figure.dot) == {(a, b) for n in cut for a, b in zip(n, n[1:])}


def test_the_dot_text_has_steps_jacobians_and_a_caption():
    dot = graph_figure(VANILLA, 2, "W_h").dot
    assert dot == graph_figure(VANILLA, 2, "W_h").dot  # deterministic
    assert "subgraph cluster_t1 {" in dot and "subgraph cluster_t2 {" in dot
    edges = {
        (a, b): plain(re.match("label=<(.*)>, color", attrs)[1])
        for a, b, attrs in EDGE.findall(dot)
    }
    assert edges[("h_1", "a_2")] == "δ Wh⊤"  # dh_1 = da_2 W_h^T, the subscripts as text
    assert edges[("W_h^(2)", "a_2")] == "h1⊤ δ"
    assert edges[("a_1", "h_1")] == "δ ⊙ (1 − h1 ⊙ h1)"
    assert "<I>W</I><SUB>" in dot and "⊤</FONT></SUP>" in dot  # real sub- and superscripts
    assert "3 paths from W_h to L" in graph_figure(VANILLA, 2, "W_h").caption


def test_rendering_with_graphviz():
    figure = graph_figure(LSTM, 1, "W_h")
    assert b"<svg" in render(figure, "svg")
    assert render(figure, "png").startswith(b"\x89PNG")


def test_the_command_writes_files_and_never_replaces_one(tmp_path, capsys):
    out = tmp_path / "g.svg"
    assert main(["graph", "--T", "2", "-o", str(out)]) == 0
    assert b"<svg" in out.read_bytes()
    assert main(["graph", "--T", "2", "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["graph", "--T", "2", "-o", str(tmp_path / "g.dot"), "--model", "gru"]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph unrolled {")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--through", "h_9"], "has no node 'h_9'; did you mean"),
        (["--to", "h_2"], "a loss term L_t is expected"),
        (["--through", "h_3", "--to", "L_2"], "no path leads from W_h through h_3 to L_2"),
        (["--T", "9"], "from 1 to 8"),
        (["--wrt", "V_h"], "unknown parameter name"),
        (["--format", "svg"], "write it with -o FILE.svg"),
        (["-o", "/nonexistent/g.svg"], "does not exist"),
    ],
)
def test_bad_requests_are_one_sentence(capsys, argv, words):
    assert main(["graph", "--T", "4", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_without_graphviz_dot_text_still_works(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    assert main(["graph", "--T", "2", "-o", str(tmp_path / "g.svg")]) == 2
    assert "Graphviz's dot program is not installed" in capsys.readouterr().err
    assert not (tmp_path / "g.svg").exists()
    assert main(["graph", "--T", "2", "-o", str(tmp_path / "g.dot")]) == 0


# -- the gradient by path length ------------------------------------------------------------------


@pytest.mark.parametrize("wrt", ["W_h", "W_x", "b"])
def test_the_components_are_the_engines_path_terms_grouped_by_lag(wrt):
    """C_l from the NumPy reference's truncations equals the sum of the engine's own path
    terms with t - k = l (SymEngine, an independent derivation)."""
    dims = Dims(N=2, D=3, H=2, C=3, T=4)
    point = VANILLA.random_point(dims, seed=4)
    derivation = derive(unroll(dims, spec=VANILLA))
    paths = derivation.paths(wrt)
    values = compile_paths(derivation, paths)(point)
    by_lag = [0.0] * dims.T
    for i, path in enumerate(paths):
        by_lag[path.loss_step - path.entry_step] += values[f"path{i}"]
    for ours, engine in zip(components(VANILLA, point, wrt), by_lag):
        np.testing.assert_allclose(ours, engine, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    dims=st.builds(
        Dims,
        N=st.integers(1, 3),
        D=st.integers(1, 3),
        H=st.integers(1, 4),
        C=st.integers(2, 4),
        T=st.integers(1, 8),
    ),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
    variant=st.sampled_from([{}, {"activation": "relu"}, {"reduction": "mean"}]),
)
def test_the_components_add_up_and_stay_under_their_bound(dims, seed, scale, variant):
    spec = VANILLA.variant(**variant)
    for wrt in ("W_h", "W_x", "b"):
        result = contributions(spec, dims, wrt, (scale,), seed=seed)
        assert result.sum_errors[0] <= 1e-9 * max(result.totals[0], 1.0)
        for norm, limit in zip(result.norms[0], result.bounds[0]):
            assert norm <= limit * (1 + 1e-9) + 1e-300


def test_the_contributions_command(tmp_path, capsys):
    out = tmp_path / "c.png"
    argv = ["contributions", "--T", "6", "--H", "3", "--scale", "0.5,1,2", "-o", str(out)]
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [s["scale"] for s in record["scales"]] == [0.5, 1.0, 2.0]
    assert len(record["scales"][0]["component_norms"]) == 6
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(argv) == 2  # the plot exists: never replaced without --force
    assert main(["contributions", "--T", "6", "--H", "3"]) == 0
    assert "l=5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "lstm"], "need truncated BPTT"),
        (["--wrt", "V"], "only W_h, W_x, b have a component per lag"),
        (["--scale", "0,1"], "positive numbers"),
        (["--truncate", "2"], "drop --truncate"),
    ],
)
def test_contributions_refuse_what_has_no_lags(capsys, argv, words):
    assert main(["contributions", "--T", "4", *argv]) == 2
    assert words in capsys.readouterr().err


def test_a_truncated_variant_highlights_only_the_paths_it_keeps():
    spec = VANILLA.variant(truncate=1)
    paths = _paths(spec, 4, "W_h")  # the engine's, filtered by t - k <= 1
    figure = graph_figure(spec, 4, "W_h")
    assert figure.paths == len(paths) == 7 and "1-step truncation" in figure.caption
    assert _highlighted(figure.dot) == {(a, b) for p in paths for a, b in zip(p.nodes, p.nodes[1:])}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["graph", "-o", "x.pdf"], "a .pdf file is not something this command writes"),
        (["graph", "-o", "x.svg", "--format", "png"], "disagree"),
        (["contributions", "-o", "plot.svg"], "(.png)"),
        (["html", "-o", "page.txt"], "(.html)"),
    ],
)
def test_an_output_of_the_wrong_kind_is_refused(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--T", "2"]) == 2
    assert words in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_links_pipes_and_devices_are_never_replaced(tmp_path, capsys):
    import os

    real = tmp_path / "real.svg"
    real.write_text("mine")
    (tmp_path / "link.svg").symlink_to(real)
    os.mkfifo(tmp_path / "pipe.dot")
    for target in ("link.svg", "pipe.dot"):
        assert main(["graph", "--T", "2", "-o", str(tmp_path / target), "--force"]) == 2
        assert "is not a regular file" in capsys.readouterr().err
    assert (tmp_path / "link.svg").is_symlink() and real.read_text() == "mine"
    assert not (tmp_path / "pipe.dot").is_file()


def test_small_components_are_not_rounding_noise():
    """Components 30 orders below the first are computed, not left to a difference of large
    numbers: every one is positive and under its bound."""
    result = contributions(VANILLA, Dims(N=2, D=3, H=8, C=4, T=50), "b", (0.5,), seed=7)
    norms, bound = result.norms[0], result.bounds[0]
    assert all(n > 0 for n in norms) and norms[-1] < 1e-25 * norms[0]
    assert all(n <= b * (1 + 1e-9) for n, b in zip(norms, bound))


# -- the picture as drawn: from the SVG's coordinates ---------------------------------------------

_SVG = "{http://www.w3.org/2000/svg}"


def _points(text):
    """The (x, y) pairs of an SVG polygon's points or a path's d (Graphviz writes absolute
    coordinates: M, C and L commands followed by pairs)."""
    values = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]
    return list(zip(values[::2], values[1::2]))


def _box(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(inner, outer):
    return all(
        outer[0] <= x <= outer[2] and outer[1] <= y <= outer[3]
        for x, y in ((inner[0], inner[1]), (inner[2], inner[3]))
    )


def _drawn(figure):
    """The rendered SVG: each cluster's rectangle, each node's box and label runs (position,
    font size, sub/superscript), each edge's label runs."""
    import xml.etree.ElementTree as ET

    svg = ET.fromstring(render(figure, "svg"))
    clusters, nodes, runs = {}, {}, {}
    for g in svg.iter(f"{_SVG}g"):
        title = g.find(f"{_SVG}title")
        kind = g.get("class")
        if kind == "cluster":
            points = _points(g.find(f"{_SVG}polygon").get("points"))
            # an axis-parallel rectangle, closed: 5 points with 2 distinct x and 2 distinct y
            assert len(points) == 5 and len({x for x, _ in points}) == 2
            assert len({y for _, y in points}) == 2
            clusters[title.text] = _box(points)
        if kind == "node":
            nodes[title.text] = _box(_points(g.find(f"{_SVG}path").get("d")))
        if kind in ("node", "edge", "graph"):
            texts = g.findall(f"{_SVG}text")  # direct children: the graph's are its caption
            runs[(kind, title.text)] = [
                (float(t.get("x")), float(t.get("y")), float(t.get("font-size")),
                 t.get("baseline-shift"), t.text or "")
                for t in texts
            ]  # fmt: skip
    size = (svg.get("width"), svg.get("height"), svg.get("viewBox"))
    return clusters, nodes, runs, size


def _members(dot):
    """Which cluster each node of the DOT text is drawn in."""
    members, cluster = {}, None
    for line in dot.splitlines():
        if line.startswith("  subgraph "):
            cluster = line.split()[1]
        elif line == "  }":
            cluster = None
        elif cluster and (m := re.match(r'\s+"([^"]+)" \[label=', line)):
            members[m[1]] = cluster
    return members


#: What a label must not contain: code's indexing (h[1]), matrix product (@), power (**),
#: transpose (^T) or the underscore of a name (W_h). A block row [0 δ 0] is notation.
_CODE = re.compile(r"\w\[|@|\*\*|\^|_")


@pytest.mark.parametrize(
    "spec, T, options",
    [
        (VANILLA, 3, {}),
        (VANILLA, 4, {"through": "h_2"}),
        (VANILLA, 3, {"convention": "column"}),
        (LSTM, 2, {}),
        (GRU, 2, {}),
    ],
)
def test_the_drawn_graph_keeps_nodes_in_their_steps_and_speaks_math(spec, T, options):
    figure = graph_figure(spec, T, "W_h", **options)
    clusters, nodes, runs, (width, height, view) = _drawn(figure)
    # at its natural size one SVG unit is one point: width="Wpt" over a viewBox W wide
    assert width.endswith("pt") and float(width[:-2]) == pytest.approx(float(view.split()[2]))
    members = _members(figure.dot)
    assert set(clusters) == {f"cluster_t{t}" for t in range(1, T + 1)}
    assert len(members) > 4 * T
    for name, box in nodes.items():
        label = runs[("node", name)]
        if name in members:  # the node's box and its label's text inside its step's box
            cluster = clusters[members[name]]
            assert _inside(box, cluster), (name, box, members[name], cluster)
            assert all(_inside((x, y, x, y), cluster) for x, y, *_ in label), name
        else:  # a parameter, h_0 or L: in no step's box
            for rectangle in clusters.values():
                overlap = box[0] < rectangle[2] and rectangle[0] < box[2]
                assert not (overlap and box[1] < rectangle[3] and rectangle[1] < box[3])
    labelled = 0
    for (kind, name), label in runs.items():
        text = "".join(run[4] for run in label)
        assert not _CODE.search(text), (name, text)
        for *_, size, shift, _ in label:
            # readable at 100 %: 10 pt and more, sub- and superscripts 8 pt (80 %)
            assert size >= (8 if shift else 10), (name, text, size)
        labelled += kind == "edge" and bool(text)
    assert labelled > 4 * T  # the edges are labelled (their Jacobians), in the notation
    texts = {name: "".join(r[4] for r in label) for (_, name), label in runs.items()}
    assert texts["a_1"] == "a1" and texts["W_h^(1)"] == "Wh(1)" and texts["L"] == "L"
    assert "δ ⊙ " in "".join(texts.values())  # ⊙ for the elementwise product
