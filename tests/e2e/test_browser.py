"""Every shipped workflow in the real ComfyUI frontend (headless Chromium): it loads with no missing
node types and no error dialog, the frontend's own API conversion equals ours, and after mapping it
onto the tiny models inside the page it is queued from the page and completes. Screenshots go to
artifacts/browser/."""

import asyncio
import json
import os
import time

import pytest
from browser import Browser
from comfy_host import free_port
from e2e_support import ARTIFACTS
from tiny_models import (
    FULL_SIZE_VAE_TINY_SIZES,
    FULL_SIZE_VAES,
    SHIPPED_MODEL_PREFIX,
    TEXT_TOKENS,
    TINY_FOLDER,
    TINY_HEIGHT,
    TINY_WIDTH,
    provide_input_images,
)
from workflow_format import ui_to_api

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# RTV_WORKFLOWS=<glob> narrows the run while developing one workflow; CI runs them all.
WORKFLOWS = sorted((ARTIFACTS.parent / "workflows").glob(os.environ.get("RTV_WORKFLOWS", "*.json")))
RUN_TIMEOUT_S = 300
TINY_STEPS = 4  # sampling steps are capped in the page: the browser test proves wiring, not quality

# Map the loaded graph onto the tiny host inside the page, the way a user would edit it: model names
# to the rtv_tiny/ files (the shipped reference model loads as it is), a small resolution, and the
# text encoders (not loadable here) replaced by the test-only conditioning node of their model family, wired to the same
# inputs (with the conditioning keys of the loader's model family).
TINY_MAPPING_JS = """
(() => {
  const g = app.graph;
  const link = (id) => (g.getLink ? g.getLink(id) : (g.links.get ? g.links.get(id) : g.links[id]));
  // graphs with a full-size VAE run smaller and shorter (tiny_models.FULL_SIZE_VAE_TINY_SIZES says why)
  const fullSizeVaes = %(full_size_vaes)s;
  const fullSize = g._nodes.some((n) => (n.widgets || []).some(
    (w) => w.name === 'vae_name' && fullSizeVaes.some((name) => String(w.value).endsWith(name))));
  const sizes = fullSize ? %(full_size_sizes)s : {width: %(width)d, height: %(height)d};
  for (const n of [...g._nodes]) {
    const sized = n.type.startsWith('Empty') || n.type.startsWith('RTV_') || n.type === 'Wan22ImageToVideoLatent';
    for (const w of n.widgets || []) {
      if (['unet_name', 'vae_name', 'ckpt_name'].includes(w.name) && !String(w.value).startsWith('%(folder)s/')
          && !String(w.value).startsWith('%(shipped)s'))
        w.value = '%(folder)s/' + w.value;
      if (sized && typeof w.value === 'number' && (w.name in sizes)) w.value = sizes[w.name];
      if (w.name === 'steps' && w.value > %(steps)d) w.value = %(steps)d;
      if (w.name === 'low_noise_start_step') w.value = Math.min(w.value, %(steps)d / 2);  // inside the capped steps
    }
    if (n.type === 'CLIPTextEncode') {
      const t = LiteGraph.createNode('RTVTest_TextConditioning');
      t.pos = [...n.pos];
      g.add(t);
      t.widgets.find((w) => w.name === 'text').value = n.widgets.find((w) => w.name === 'text').value;
      t.widgets.find((w) => w.name === 'tokens').value = %(tokens)d;
      const clip = n.inputs[0].link != null ? g.getNodeById(link(n.inputs[0].link).origin_id) : null;
      const clipType = clip && (clip.widgets || []).find((w) => w.name === 'type');
      const families = {hunyuan_video: 'hunyuan_video', hunyuan_video_15: 'hunyuan_video_15', ltxv: 'ltxv'};
      t.widgets.find((w) => w.name === 'family').value = (clipType && families[clipType.value]) || 'wan';
      for (const id of [...(n.outputs[0].links || [])]) {
        const l = link(id);
        t.connect(0, g.getNodeById(l.target_id), l.target_slot);
      }
      g.remove(n);
    }
  }
  for (const n of [...g._nodes]) if (n.type === 'CLIPLoader' || n.type === 'DualCLIPLoader') g.remove(n);
  return g._nodes.map((n) => n.type);
})()
""" % {"folder": TINY_FOLDER, "shipped": SHIPPED_MODEL_PREFIX, "width": TINY_WIDTH, "height": TINY_HEIGHT, "tokens": TEXT_TOKENS,
       "steps": TINY_STEPS, "full_size_vaes": json.dumps(FULL_SIZE_VAES),
       "full_size_sizes": json.dumps(FULL_SIZE_VAE_TINY_SIZES)}


def _strip(prompt: dict) -> dict:
    return {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in prompt.items()}


async def _fit_view(browser):
    await browser.js("(async () => { try { await app.extensionManager.command.execute('Comfy.Canvas.FitView') }"
                     " catch (e) { app.canvas.ds.scale = 0.6 } app.canvas.setDirty(true, true); return true })()")
    await asyncio.sleep(0.5)


async def _check_workflow(server, object_info, browser, path):
    workflow = json.loads(path.read_text())
    await browser.js(f"app.loadGraphData({json.dumps(workflow)}, true, true, {json.dumps(path.name)})")
    await asyncio.sleep(1.0)
    missing = await browser.js(
        f"{json.dumps([n['type'] for n in workflow['nodes']])}.filter((t) => !LiteGraph.registered_node_types[t])")
    assert missing == [], f"{path.name}: node types missing in the frontend: {missing}"
    dialogs = await browser.js(
        "[...document.querySelectorAll('.p-dialog, .comfy-modal')].filter((d) => d.offsetParent !== null)"
        ".map((d) => d.innerText.slice(0, 300))")
    assert dialogs == [], f"{path.name}: dialog shown after loading: {dialogs}"

    frontend_prompt = await browser.js("app.graphToPrompt().then((p) => p.output)")
    assert _strip(frontend_prompt) == _strip(ui_to_api(workflow, object_info)), path.name

    await _fit_view(browser)
    await browser.screenshot(ARTIFACTS / "browser" / f"{path.stem}-loaded.png")

    await browser.js(TINY_MAPPING_JS)
    history_before = len(server.get("/history"))
    await browser.js("app.queuePrompt(0, 1).then(() => true)")  # what the Run button does
    t0 = time.time()
    while time.time() - t0 < RUN_TIMEOUT_S:
        queue = server.get("/queue")
        if not queue["queue_running"] and not queue["queue_pending"] and len(server.get("/history")) > history_before:
            break
        await asyncio.sleep(0.5)
    entries = list(server.get("/history").values())
    assert len(entries) > history_before, f"{path.name}: nothing was queued from the page"
    status = entries[-1]["status"]
    errors = [m[1].get("exception_message") for m in status["messages"] if m[0] == "execution_error"]
    assert status["status_str"] == "success", f"{path.name}: {errors}"
    await _fit_view(browser)
    await browser.screenshot(ARTIFACTS / "browser" / f"{path.stem}.png")
    assert browser.console_errors == [], browser.console_errors


@pytest.mark.skipif(not WORKFLOWS, reason="no workflows in workflows/")
def test_every_workflow_loads_converts_and_runs_in_the_real_frontend(server, object_info):
    server.post("/settings/Comfy.TutorialCompleted", True)  # skip the first-visit template browser
    for path in WORKFLOWS:  # start images of LoadImage nodes, before the page lists the input folder
        provide_input_images(ui_to_api(json.loads(path.read_text()), object_info), server.workdir / "input")

    async def scenario():
        async with Browser(free_port()) as browser:
            await browser.open(server.url + "/", "window.app && window.app.graph && window.LiteGraph")
            for path in WORKFLOWS:
                await _check_workflow(server, object_info, browser, path)

    asyncio.run(scenario())
