"""Convert between ComfyUI's UI ("save") workflow format and the API ("prompt") format.

ComfyUI 0.3.75 converts only in the frontend (``app.graphToPrompt``). Shipped workflows are UI files
(what users drag in); tests and ``make demo`` need API prompts. Both directions are driven by
``/object_info``, which says which inputs are widgets and in which order their values are stored.
The browser test checks ``ui_to_api`` against the real frontend's own conversion.
"""

from __future__ import annotations

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MODE_MUTED, MODE_BYPASSED = 2, 4
NODE_WIDTH, COLUMN_GAP, ROW_GAP = 320, 60, 40


def input_specs(info: dict) -> list[tuple[str, object, dict]]:
    """(name, type, options) for every required then optional input, in schema order."""
    specs = []
    for section in ("required", "optional"):
        block = info["input"].get(section, {})
        for name in info.get("input_order", {}).get(section, list(block)):
            spec = block[name]
            specs.append((name, spec[0], spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}))
    return specs


def is_widget(kind, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_value_count(options: dict) -> int:
    """Stored values per widget: seeds carry a second value, the control_after_generate mode."""
    return 2 if options.get("control_after_generate") else 1


# ------------------------------------------------------------------------------------ UI -> API


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """API prompt of a UI workflow: skips frontend-only and muted nodes, follows reroutes."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {lk[0]: lk for lk in workflow["links"]}

    def source_of(link_id):
        _, origin, origin_slot, *_ = links[link_id]
        while nodes[origin]["type"] == "Reroute":
            link_id = nodes[origin]["inputs"][0]["link"]
            _, origin, origin_slot, *_ = links[link_id]
        if nodes[origin].get("mode") == MODE_BYPASSED:
            raise NotImplementedError(f"node #{origin} is bypassed; ui_to_api does not resolve bypasses")
        return [str(origin), origin_slot]

    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode") in (MODE_MUTED, MODE_BYPASSED):
            continue
        if node["type"] not in object_info:
            raise KeyError(f"node type {node['type']!r} (#{node['id']}) is not installed on this server")
        linked = {i["name"]: i["link"] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, kind, options in input_specs(object_info[node["type"]]):
            if is_widget(kind, options):
                stored, values = values[: widget_value_count(options)], values[widget_value_count(options):]
                if stored:
                    inputs[name] = stored[0]
            if name in linked:
                inputs[name] = source_of(linked[name])
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or object_info[node["type"]]["display_name"]}}
    return prompt


# ------------------------------------------------------------------------------------ API -> UI


def api_to_ui(prompt: dict, object_info: dict, columns: dict[str, int] | None = None,
              notes: list[str] = (), titles: dict[str, str] | None = None) -> dict:
    """A UI workflow for an API prompt, laid out left to right by graph depth (or ``columns``)."""
    ids = {nid: int(nid) for nid in prompt}
    depth: dict[str, int] = {}

    def depth_of(nid: str) -> int:
        if nid not in depth:
            parents = [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list)]
            depth[nid] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[nid]

    columns = columns or {nid: depth_of(nid) for nid in prompt}
    rows: dict[int, int] = {}
    ui_nodes, ui_links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for nid in sorted(prompt, key=lambda n: (columns[n], ids[n])):
        node, info = prompt[nid], object_info[prompt[nid]["class_type"]]
        inputs, widgets = [], []
        for name, kind, options in input_specs(info):
            value = node["inputs"].get(name)
            if is_widget(kind, options):
                default = options.get("default", kind[0] if isinstance(kind, list) and kind else None)
                widgets.append(default if isinstance(value, list) or value is None else value)
                if options.get("control_after_generate"):
                    widgets.append("fixed")
            if isinstance(value, list):
                link_id = len(ui_links) + 1
                src, slot = value
                src_type = object_info[prompt[src]["class_type"]]["output"][slot]
                ui_links.append([link_id, ids[src], slot, ids[nid], len(inputs), src_type])
                out_links.setdefault((src, slot), []).append(link_id)
                entry = {"name": name, "type": src_type, "link": link_id}
                if is_widget(kind, options):
                    entry["widget"] = {"name": name}
                inputs.append(entry)
        col = columns[nid]
        row_y = rows.get(col, 0)
        height = 80 + 26 * (len(widgets) + max(len(inputs), len(info["output"])))
        rows[col] = row_y + height + ROW_GAP
        ui_nodes.append({
            "id": ids[nid], "type": node["class_type"], "pos": [col * (NODE_WIDTH + COLUMN_GAP), row_y],
            "size": [NODE_WIDTH, height], "flags": {}, "order": len(ui_nodes), "mode": 0,
            "inputs": inputs, "outputs": [], "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets, **({"title": titles[nid]} if titles and nid in titles else {}),
        })
    for ui_node in ui_nodes:
        info = object_info[ui_node["type"]]
        ui_node["outputs"] = [
            {"name": info["output_name"][slot], "type": kind, "slot_index": slot,
             "links": out_links.get((str(ui_node["id"]), slot), [])}
            for slot, kind in enumerate(info["output"])
        ]
    next_id = max(ids.values()) + 1
    for i, text in enumerate(notes):
        ui_nodes.append({"id": next_id + i, "type": "Note", "pos": [0, -260 - 220 * i], "size": [520, 200],
                         "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                         "properties": {}, "widgets_values": [text]})
    return {"last_node_id": next_id + len(notes) - 1, "last_link_id": len(ui_links), "nodes": ui_nodes,
            "links": ui_links, "groups": [], "config": {}, "extra": {}, "version": 0.4}
