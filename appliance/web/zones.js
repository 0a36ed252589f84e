// Event zones on the live view: drawn with every frame (compositor.js calls
// drawZones with the frame's content box, so they sit on the picture as the
// boxes do), and edited in "Edit zones" mode: each click on the picture adds
// a corner (normalized, 0 to 1, origin top left), "close zone" turns the
// corners into a named zone, "delete" removes one, "save" sends the list
// (PUT /api/events/zones, which checks it by the config's rules and stores
// it) and "cancel" forgets the edits. The server's refusal is shown as it
// says it. The event player (events.js) draws the same list on clips.

import { $ } from './state.js';

/** Zones on the picture: pink, apart from the target's cyan, the motion amber and the class hues. */
export const ZONE_COLOR = 'rgb(255, 64, 160)';
/** The polygon being drawn: dashed white, with its corners marked. */
const DRAFT_COLOR = 'rgb(255, 255, 255)';

// saved: the zones in force; work: the list being edited (null when not
// editing); draft: corners of the zone being drawn; cb: the content box the
// last frame was drawn into, in CSS pixels of the stage.
const Z = { saved: [], work: null, draft: [], cb: null, on: false };

/** The zones in force (as the server last said). */
export function zoneList() {
  return Z.saved;
}

/** Draws the zones (or, while editing, the edited list and the draft) into `cb` (CSS pixels). */
export function drawZones(ctx, cb) {
  Z.cb = cb;
  const zones = Z.work || ($('show-zones').checked ? Z.saved : []);
  if (!zones.length && !Z.draft.length) return;
  const px = ([x, y]) => [cb.x + x * cb.w, cb.y + y * cb.h];
  const path = (points, close) => {
    ctx.beginPath();
    points.forEach((p, i) => (i ? ctx.lineTo(...px(p)) : ctx.moveTo(...px(p))));
    if (close) ctx.closePath();
    ctx.stroke();
  };
  ctx.save();
  ctx.lineWidth = 2;
  ctx.strokeStyle = ZONE_COLOR;
  ctx.fillStyle = ZONE_COLOR;
  ctx.font = '600 12px system-ui, sans-serif';
  ctx.textBaseline = 'bottom';
  for (const zone of zones) {
    path(zone.points, true);
    const [x, y] = px(zone.points[0]);
    ctx.fillText(zone.name, x + 4, Math.max(cb.y + 14, y - 3));
  }
  if (Z.draft.length) {
    ctx.strokeStyle = DRAFT_COLOR;
    ctx.fillStyle = DRAFT_COLOR;
    ctx.setLineDash([4, 3]);
    path(Z.draft, false);
    for (const p of Z.draft) {
      const [x, y] = px(p);
      ctx.fillRect(x - 3, y - 3, 6, 6);
    }
  }
  ctx.restore();
}

const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

function showError(text) {
  $('zone-error').textContent = text;
  $('zone-error').hidden = !text;
}

// The list under the picture: every zone's name and, while editing, a delete button.
function render() {
  const editing = !!Z.work;
  $('zone-editor').hidden = !editing;
  $('zones-edit').hidden = editing || !Z.on;
  $('stage').classList.toggle('editing', editing);
  $('zone-close').disabled = Z.draft.length < 3;
  $('zone-corners').textContent = `${Z.draft.length} corner${Z.draft.length === 1 ? '' : 's'}`;
  const zones = Z.work || Z.saved;
  $('zone-list').replaceChildren(
    ...zones.map((zone, i) => {
      const li = document.createElement('li');
      li.dataset.name = zone.name;
      const name = document.createElement('span');
      name.textContent = `${zone.name} (${zone.points.length} corners)`;
      li.append(name);
      if (editing) {
        const del = document.createElement('button');
        del.type = 'button';
        del.textContent = 'delete';
        del.setAttribute('aria-label', `delete zone ${zone.name}`);
        del.onclick = () => {
          Z.work.splice(i, 1);
          render();
        };
        li.append(' ', del);
      }
      return li;
    }),
  );
  $('zones').hidden = !Z.on;
}

function onStageClick(e) {
  if (!Z.work || !Z.cb) return;
  // The canvases fill the stage inside its border; the content box is theirs.
  const stage = $('stage');
  const r = stage.getBoundingClientRect();
  const x = (e.clientX - r.left - stage.clientLeft - Z.cb.x) / Z.cb.w;
  const y = (e.clientY - r.top - stage.clientTop - Z.cb.y) / Z.cb.h;
  if (x < 0 || x > 1 || y < 0 || y > 1) return; // on the letterbox, not the picture
  Z.draft.push([round(x), round(y)]);
  render();
}

function closeZone() {
  if (Z.draft.length < 3) return;
  const name = $('zone-name').value || `zone ${Z.work.length + 1}`;
  Z.work.push({ name, points: Z.draft });
  Z.draft = [];
  $('zone-name').value = '';
  render();
}

async function save() {
  const zones = Z.work.slice();
  showError('');
  let res;
  try {
    res = await fetch('/api/events/zones', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(zones),
      cache: 'no-store',
    });
  } catch (e) {
    showError(`saving failed: ${e.message || e}`);
    return;
  }
  if (!res.ok) {
    showError((await res.text()).trim() || `saving failed: ${res.status}`);
    return;
  }
  Z.saved = await res.json();
  stopEditing();
}

function startEditing() {
  Z.work = Z.saved.map((z) => ({ name: z.name, points: z.points.map((p) => [...p]) }));
  Z.draft = [];
  showError('');
  render();
}

function stopEditing() {
  Z.work = null;
  Z.draft = [];
  render();
}

async function load() {
  try {
    const res = await fetch('/api/events/zones', { cache: 'no-store' });
    if (!res.ok) return;
    Z.on = res.headers.get('x-mado-events') !== 'off';
    Z.saved = await res.json();
  } catch {
    // the device is away: no zones to draw
  }
  render();
}

/** Wires the zone controls and loads the zones; call once. */
export function startZones() {
  $('stage').addEventListener('click', onStageClick);
  $('zones-edit').onclick = startEditing;
  $('zone-close').onclick = closeZone;
  $('zone-undo').onclick = () => {
    Z.draft.pop();
    render();
  };
  $('zone-save').onclick = save;
  $('zone-cancel').onclick = stopEditing;
  load();
}
