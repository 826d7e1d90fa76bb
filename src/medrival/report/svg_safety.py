"""Inline SVG made safe by parsing, not by pattern matching.

A figure's SVG is parsed with ``xml.etree.ElementTree``, every element and attribute is checked against a
whitelist of what matplotlib writes, and the tree is serialised again by this module. Text nodes and attribute
values are data: they are re-escaped on the way out, so a dataset named ``cohort onset=2019`` or
``<script>alert(1)</script>`` is just text. Only structure can make an SVG unsafe (a ``script`` element, an
``on*`` attribute, an external link), and only structure is refused. Comments and processing instructions are
dropped (ElementTree's parser skips them), and a DOCTYPE or ENTITY declaration is refused before parsing: an
internal entity could expand without bound, and matplotlib never writes one.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from medrival.core.errors import MedrivalError

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
# Elements matplotlib's SVG backend writes, plus harmless structural ones; nothing that runs code or embeds HTML
# (script, foreignObject, iframe, animate/set, which can rewrite an href).
ELEMENTS = frozenset({
    "svg", "g", "defs", "style", "path", "use", "clipPath", "rect", "circle", "ellipse", "line", "polyline",
    "polygon", "text", "tspan", "title", "desc", "linearGradient", "radialGradient", "stop", "pattern", "mask",
    "image", "symbol", "marker"})
ATTRIBUTES = frozenset({
    "version", "width", "height", "viewBox", "preserveAspectRatio", "id", "class", "style", "type", "transform",
    "d", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "dx", "dy", "points", "fill", "stroke",
    "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-dasharray", "stroke-dashoffset", "opacity",
    "fill-opacity", "stroke-opacity", "fill-rule", "clip-path", "clip-rule", "mask", "font-family", "font-size",
    "font-weight", "font-style", "text-anchor", "dominant-baseline", "letter-spacing", "textLength",
    "lengthAdjust", "gradientUnits", "gradientTransform", "offset", "stop-color", "stop-opacity",
    "patternUnits", "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "markerWidth",
    "markerHeight", "refX", "refY", "orient", "href", "space"})
# In-page references ("#id") anywhere; embedded raster data only on <image> (matplotlib's imshow writes PNG).
_LOCAL_REF = re.compile(r"#[\w.:-]*\Z")
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*\Z")
# CSS inside style attributes and <style>: only in-page url(#id), no @import, no legacy script hooks.
_CSS_DANGER = re.compile(r"url\(\s*['\"]?(?!#)|@import|expression\s*\(|javascript:|behavior\s*:", re.I)


class UnsafeSvgError(MedrivalError):
    """A figure's SVG holds structure that could run code or fetch something."""


def _local(name: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree ``{ns}name``."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def _check_attribute(tag: str, name: str, value: str) -> None:
    namespace, local = _local(name)
    if namespace not in ("", XLINK_NS, "http://www.w3.org/XML/1998/namespace") or local not in ATTRIBUTES:
        raise UnsafeSvgError(f"attribute {local!r} on <{tag}> is not allowed in an inline figure")
    if local == "href" and not (_LOCAL_REF.match(value) or (tag == "image" and _IMAGE_DATA.match(value))):
        raise UnsafeSvgError(f"<{tag}> links outside the page")
    if _CSS_DANGER.search(value):
        raise UnsafeSvgError(f"attribute {local!r} on <{tag}> loads a resource")


def _check(element: ET.Element) -> None:
    namespace, tag = _local(element.tag)
    if namespace != SVG_NS or tag not in ELEMENTS:
        raise UnsafeSvgError(f"element <{tag}> is not allowed in an inline figure")
    for name, value in element.attrib.items():
        _check_attribute(tag, name, value)
    if tag == "style" and _CSS_DANGER.search(element.text or ""):
        raise UnsafeSvgError("a <style> block in a figure loads a resource")
    for child in element:
        _check(child)


def _attribute_name(name: str) -> str:
    namespace, local = _local(name)
    return {XLINK_NS: "xlink:", "http://www.w3.org/XML/1998/namespace": "xml:"}.get(namespace, "") + local


def _serialise(element: ET.Element, out: list[str]) -> None:
    _, tag = _local(element.tag)
    attributes = "".join(f" {_attribute_name(k)}={quoteattr(v)}" for k, v in element.attrib.items())
    out.append(f"<{tag}{attributes}>")
    out.append(escape(element.text or ""))
    for child in element:
        _serialise(child, out)
        out.append(escape(child.tail or ""))
    out.append(f"</{tag}>")


def safe_svg(svg: str) -> str:
    """``svg`` re-serialised from its parsed tree after every element and attribute passed the whitelist;
    "" for no figure; ``UnsafeSvgError`` for active or external content, a DTD, or text that is not XML."""
    if not svg or not svg.strip():
        return ""
    if re.search(r"<!\s*(DOCTYPE|ENTITY)", svg, re.I):
        raise UnsafeSvgError("a figure declares a DOCTYPE or ENTITY; matplotlib writes neither")
    try:
        root = ET.fromstring(svg.strip())
    except ET.ParseError as error:
        raise UnsafeSvgError(f"a figure is not well-formed SVG ({error})") from None
    if _local(root.tag) != (SVG_NS, "svg"):
        raise UnsafeSvgError("a figure's root element is not <svg>")
    _check(root)
    out: list[str] = []
    _serialise(root, out)
    # Namespaces are declared once on the root, as matplotlib does; every element above is SVG by the check.
    return out[0][:-1] + f' xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}">' + "".join(out[1:])
