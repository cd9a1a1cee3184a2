// morpho growth page: the tissue of every snapshot in WebGL2, a time slider, cell details,
// events and curves. Reads the JSON in #morpho-data (see morpho/viz/page_data.py).
// Spheres are instanced quads ray-traced in the fragment shader (exact silhouettes and
// depth), edges are GL lines; picking casts the mouse ray against every cell's sphere.
// window.morphoPage is a read-only view of the page's state for tests.
"use strict";
(() => {
  const D = JSON.parse(document.getElementById("morpho-data").textContent);
  const $ = (id) => document.getElementById(id);
  const ARRAYS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, float32: Float32Array };

  function decode(t) {
    const bin = atob(t.b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const A = ARRAYS[t.dtype];
    return new A(bytes.buffer, 0, bytes.length / A.BYTES_PER_ELEMENT);
  }

  // ---------------------------------------------------------------- data
  const S = D.snap;
  const K = D.steps.length;
  const rowCell = decode(S.cell); // (T,) index into the cell table
  const posQ = decode(S.pos); // (T * 3,) uint16 in the run's box
  const radQ = decode(S.radius); // (T,) uint8 of radiusMax
  const runs = {}; // each edge once: its ends (cell-table rows) and its snapshots
  for (const k in S.edgeRuns) runs[k] = decode(S.edgeRuns[k]);
  const edgeStyle = decode(S.edgeStyle); // (E,) weight * 127 + 128 * wormhole
  const stats = {};
  for (const k in S.stats) stats[k] = decode(S.stats[k]);
  const colors = {};
  for (const k in D.colors) colors[k] = Object.assign({}, D.colors[k], { codes: decode(D.colors[k].codes) });
  const C = D.cells;
  const rowOfId = new Map(C.id.map((id, i) => [id, i]));
  const firstSnap = new Int32Array(C.id.length).fill(-1);
  for (let k = 0; k < K; k++) {
    for (let t = S.cellOffset[k]; t < S.cellOffset[k + 1]; t++) {
      if (firstSnap[rowCell[t]] < 0) firstSnap[rowCell[t]] = k;
    }
  }
  const ROLES = ["input", "hidden", "output"];
  const BORN = [1.0, 0.9, 0.45];

  const state = {
    snap: K - 1, color: D.color in D.colors ? D.color : "free-energy", selected: null, hovered: null,
    frames: 0, drawnCells: 0, drawnEdges: 0, readyMs: null, playing: null,
  };

  // the current snapshot in world units: positions, radii, cell-table rows
  const cur = { n: 0, pos: new Float32Array(0), rad: new Float32Array(0), cell: new Uint32Array(0), t0: 0, edges: new Uint32Array(0) };
  const rowOfCell = new Int32Array(C.id.length); // cell-table row -> row in the snapshot
  function loadSnapshot(k) {
    const a = S.cellOffset[k], n = S.cellOffset[k + 1] - a;
    cur.n = n; cur.t0 = a;
    cur.pos = new Float32Array(n * 3); cur.rad = new Float32Array(n); cur.cell = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) cur.pos[3 * i + j] = S.posLo[j] + posQ[3 * (a + i) + j] * S.posScale[j];
      cur.rad[i] = (radQ[a + i] / 255) * S.radiusMax;
      cur.cell[i] = rowCell[a + i];
    }
    rowOfCell.fill(-1);
    for (let i = 0; i < n; i++) rowOfCell[cur.cell[i]] = i;
    // the snapshot's edges: the runs spanning it, in run order (as page_data.edge_runs)
    const nE = S.edgeOffset[k + 1] - S.edgeOffset[k];
    cur.edges = new Uint32Array(2 * nE);
    let e = 0;
    for (let r = 0; r < runs.first.length && e < nE; r++) {
      if (runs.first[r] > k || runs.last[r] < k) continue;
      cur.edges[2 * e] = rowOfCell[runs.src[r]];
      cur.edges[2 * e + 1] = rowOfCell[runs.dst[r]];
      e++;
    }
  }
  function rowInSnapshot(cellId) {
    const c = rowOfId.get(cellId);
    for (let i = 0; i < cur.n; i++) if (cur.cell[i] === c) return i;
    return -1;
  }
  function rgbOf(choice, t) {
    const c = colors[choice], code = c.codes[t], tab = c.table;
    return [tab[3 * code] / 255, tab[3 * code + 1] / 255, tab[3 * code + 2] / 255];
  }

  // ---------------------------------------------------------------- small vector maths
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const norm = (a) => { const l = Math.hypot(a[0], a[1], a[2]) || 1; return [a[0] / l, a[1] / l, a[2] / l]; };
  function perspective(fovy, aspect, near, far) {
    const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
    return new Float32Array([f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0]);
  }
  function lookAt(eye, target, up) {
    const z = norm(sub(eye, target)), x = norm(cross(up, z)), y = cross(z, x);
    return new Float32Array([x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0,
      -dot(x, eye), -dot(y, eye), -dot(z, eye), 1]);
  }
  function apply(m, v) { // column-major 4x4 times (x, y, z, 1)
    const o = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) o[i] = m[i] * v[0] + m[4 + i] * v[1] + m[8 + i] * v[2] + m[12 + i];
    return o;
  }

  // ---------------------------------------------------------------- camera (z up, orbit)
  const lo = D.bounds[0], hi = D.bounds[1];
  const FOV = (30 * Math.PI) / 180; // the movie's view angle
  const cam = {
    target: [0, 1, 2].map((j) => (lo[j] + hi[j]) / 2),
    yaw: -Math.PI / 3, pitch: (18 * Math.PI) / 180, // the movie's elevation
    reach: Math.max(0.5 * Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), 1e-3),
  };
  cam.dist = cam.reach / Math.sin(FOV / 2);
  function camera() {
    const w = canvas.clientWidth || 1, h = canvas.clientHeight || 1, cp = Math.cos(cam.pitch);
    const eye = [cam.target[0] + cam.dist * cp * Math.cos(cam.yaw), cam.target[1] + cam.dist * cp * Math.sin(cam.yaw),
      cam.target[2] + cam.dist * Math.sin(cam.pitch)];
    const near = Math.max(cam.dist - 4 * cam.reach, cam.dist * 1e-3), far = cam.dist + 4 * cam.reach;
    const view = lookAt(eye, cam.target, [0, 0, 1]);
    return { eye, view, proj: perspective(FOV, w / h, near, far), w, h };
  }

  // ---------------------------------------------------------------- WebGL
  const canvas = $("gl");
  const gl = canvas.getContext("webgl2", { antialias: true, preserveDrawingBuffer: true });
  const SPHERE_VS = `#version 300 es
  layout(location=0) in vec2 corner;
  layout(location=1) in vec4 center;  // xyz, radius
  layout(location=2) in vec4 color;   // rgb, flag (1 hovered, 2 selected, 3 newborn)
  uniform mat4 view, proj;
  out vec3 vpos; out vec3 vcenter; out float rad; out vec3 col; out float flag;
  void main() {
    vec4 c = view * vec4(center.xyz, 1.0);
    float r = center.w * (color.a > 0.5 ? 1.35 : 1.0);
    vcenter = c.xyz; rad = r; col = color.rgb; flag = color.a;
    // a quad through the centre, facing the eye, that holds the silhouette: the tangent
    // cone widens it by D / sqrt(D^2 - r^2), and off the axis the ellipse stretches (< 1.25)
    float D = length(c.xyz);
    float k = 1.25 * D / sqrt(max(D * D - r * r, 1e-4 * D * D));
    vpos = vec3(c.xy + corner * r * k, c.z);
    gl_Position = proj * vec4(vpos, 1.0);
  }`;
  const SPHERE_FS = `#version 300 es
  precision highp float;
  in vec3 vpos; in vec3 vcenter; in float rad; in vec3 col; in float flag;
  uniform mat4 proj; uniform vec3 born;
  out vec4 o;
  void main() {
    vec3 d = normalize(vpos);               // the eye ray through this pixel (view space)
    float b = dot(d, vcenter);
    float h = b * b - dot(vcenter, vcenter) + rad * rad;
    if (h < 0.0) discard;
    vec3 p = d * (b - sqrt(h));             // first hit on the sphere
    vec3 n = normalize(p - vcenter);
    vec4 clip = proj * vec4(p, 1.0);
    gl_FragDepth = 0.5 * clip.z / clip.w + 0.5;
    float facing = dot(n, -d);
    if (flag > 0.5 && facing < 0.6) {       // a ring around a marked cell
      o = vec4(flag > 2.5 ? born : (flag > 1.5 ? vec3(1.0) : vec3(0.75)), 1.0);
      return;
    }
    vec3 L = normalize(vec3(0.35, 0.55, 0.75));
    float diff = max(dot(n, L), 0.0);
    float spec = pow(max(dot(reflect(-L, n), -d), 0.0), 24.0);
    o = vec4(col * (0.38 + 0.72 * diff) + 0.22 * spec, 1.0);
  }`;
  const LINE_VS = `#version 300 es
  layout(location=0) in vec3 p; layout(location=1) in vec4 c;
  uniform mat4 view, proj; out vec4 col;
  void main() { gl_Position = proj * view * vec4(p, 1.0); col = c; }`;
  const LINE_FS = `#version 300 es
  precision mediump float; in vec4 col; out vec4 o;
  void main() { o = col; }`;

  function program(vs, fs) {
    const p = gl.createProgram();
    for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      gl.attachShader(p, s);
    }
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
    return p;
  }
  let gfx = null;
  if (gl) {
    gfx = { sphere: program(SPHERE_VS, SPHERE_FS), line: program(LINE_VS, LINE_FS) };
    gfx.sphereVao = gl.createVertexArray();
    gl.bindVertexArray(gfx.sphereVao);
    const quad = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, quad);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    gfx.inst = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, gfx.inst);
    for (const [loc, off] of [[1, 0], [2, 16]]) {
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, 4, gl.FLOAT, false, 32, off);
      gl.vertexAttribDivisor(loc, 1);
    }
    gfx.lineVao = gl.createVertexArray();
    gl.bindVertexArray(gfx.lineVao);
    gfx.lines = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, gfx.lines);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 3, gl.FLOAT, false, 28, 0);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribPointer(1, 4, gl.FLOAT, false, 28, 12);
    gl.bindVertexArray(null);
  } else {
    $("view").insertAdjacentHTML("beforeend",
      '<p style="position:absolute;top:40%;width:100%;text-align:center">This browser has no WebGL2: the 3D view is off.</p>');
  }

  function uniforms(p, m) {
    gl.uniformMatrix4fv(gl.getUniformLocation(p, "view"), false, m.view);
    gl.uniformMatrix4fv(gl.getUniformLocation(p, "proj"), false, m.proj);
  }
  function flagOf(i) {
    const id = C.id[cur.cell[i]];
    if (id === state.selected) return 2;
    if (id === state.hovered) return 1;
    return firstSnap[cur.cell[i]] === state.snap && state.snap > 0 ? 3 : 0;
  }
  function draw() {
    drawPending = false;
    const m = camera(), dpr = window.devicePixelRatio || 1;
    const W = Math.round(m.w * dpr), H = Math.round(m.h * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    const inst = new Float32Array(cur.n * 8);
    for (let i = 0; i < cur.n; i++) {
      const rgb = rgbOf(state.color, cur.t0 + i);
      inst.set([cur.pos[3 * i], cur.pos[3 * i + 1], cur.pos[3 * i + 2], cur.rad[i], rgb[0], rgb[1], rgb[2], flagOf(i)], 8 * i);
    }
    const e0 = S.edgeOffset[state.snap], nE = S.edgeOffset[state.snap + 1] - e0;
    const lines = new Float32Array(nE * 14);
    for (let e = 0; e < nE; e++) {
      const style = edgeStyle[e0 + e], worm = style >= 128, w = (style & 127) / 127;
      const rgb = worm ? D.theme.wormhole : D.theme.edge, alpha = 0.2 + 0.7 * w;
      for (let end = 0; end < 2; end++) {
        const r = cur.edges[2 * e + end];
        lines.set([cur.pos[3 * r], cur.pos[3 * r + 1], cur.pos[3 * r + 2], rgb[0], rgb[1], rgb[2], alpha], 14 * e + 7 * end);
      }
    }
    if (gl) {
      const bg = D.theme.background;
      gl.viewport(0, 0, W, H);
      gl.clearColor(bg[0], bg[1], bg[2], 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.enable(gl.DEPTH_TEST);
      gl.useProgram(gfx.sphere);
      uniforms(gfx.sphere, m);
      gl.uniform3fv(gl.getUniformLocation(gfx.sphere, "born"), BORN);
      gl.bindVertexArray(gfx.sphereVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, gfx.inst);
      gl.bufferData(gl.ARRAY_BUFFER, inst, gl.DYNAMIC_DRAW);
      gl.disable(gl.BLEND);
      gl.depthMask(true);
      if (cur.n) gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, cur.n);
      gl.useProgram(gfx.line);
      uniforms(gfx.line, m);
      gl.bindVertexArray(gfx.lineVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, gfx.lines);
      gl.bufferData(gl.ARRAY_BUFFER, lines, gl.DYNAMIC_DRAW);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
      gl.depthMask(false);
      if (nE) gl.drawArrays(gl.LINES, 0, 2 * nE);
      gl.depthMask(true);
      gl.bindVertexArray(null);
    }
    state.drawnCells = cur.n;
    state.drawnEdges = nE;
    state.frames += 1;
    if (state.readyMs === null) state.readyMs = performance.now();
  }
  let drawPending = false;
  function redraw() {
    if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
  }

  // ---------------------------------------------------------------- picking
  function pick(clientX, clientY) {
    const rect = canvas.getBoundingClientRect(), m = camera();
    const nx = (2 * (clientX - rect.left)) / rect.width - 1, ny = 1 - (2 * (clientY - rect.top)) / rect.height;
    const f = norm(sub(cam.target, m.eye)), right = norm(cross(f, [0, 0, 1])), up = cross(right, f);
    const tan = Math.tan(FOV / 2), aspect = rect.width / rect.height;
    const d = norm([0, 1, 2].map((j) => f[j] + nx * tan * aspect * right[j] + ny * tan * up[j]));
    let best = -1, bestT = Infinity;
    for (let i = 0; i < cur.n; i++) {
      const oc = sub(m.eye, [cur.pos[3 * i], cur.pos[3 * i + 1], cur.pos[3 * i + 2]]);
      const b = dot(oc, d), h = b * b - dot(oc, oc) + cur.rad[i] * cur.rad[i];
      if (h < 0) continue;
      const t = -b - Math.sqrt(h);
      if (t > 0 && t < bestT) { bestT = t; best = i; }
    }
    return best < 0 ? null : C.id[cur.cell[best]];
  }
  function project(cellId) {
    const i = rowInSnapshot(cellId);
    if (i < 0) return null;
    const m = camera(), rect = canvas.getBoundingClientRect();
    const v = apply(m.view, [cur.pos[3 * i], cur.pos[3 * i + 1], cur.pos[3 * i + 2]]), c = apply(m.proj, v);
    return { x: rect.left + (0.5 + (0.5 * c[0]) / c[3]) * rect.width, y: rect.top + (0.5 - (0.5 * c[1]) / c[3]) * rect.height };
  }

  // ---------------------------------------------------------------- text
  const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
  const num = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : (+x.toPrecision(4)).toString());
  function eventText(e) {
    const made = e.new_cells && e.new_cells.length ? ` → ${e.new_cells.join(", ")}` : "";
    const on = e.cells && e.cells.length ? ` of cell${e.cells.length > 1 ? "s" : ""} ${e.cells.join(", ")}` : "";
    return `${e.kind || "event"}${on}${made}`;
  }
  function lastEvent(k) {
    let last = null;
    for (const e of D.events) if (e.step <= D.steps[k]) last = e;
    return last;
  }
  function showInfo() {
    const id = state.selected !== null ? state.selected : state.hovered;
    const box = $("info");
    if (id === null) { box.innerHTML = '<p class="muted">Hover or click a cell.</p>'; return; }
    const c = rowOfId.get(id), i = rowInSnapshot(id), step = D.steps[state.snap];
    const rows = [["level", C.level[c]], ["role", ROLES[C.role[c]] || C.role[c]], ["born", `step ${C.birth[c]}`],
      ["parent", C.parent[c] < 0 ? "none (seed cell)" : C.parent[c]]];
    if (i >= 0) {
      const t = cur.t0 + i;
      rows.push(["F", num(stats.F[t])], ["U", num(stats.U[t])], ["S", `${num(stats.S[t])} <span class="muted">H(gate EMA)</span>`],
        ["W", num(stats.W[t])], ["gate EMA", num(stats.gate[t])]);
    } else {
      rows.push(["", `<span class="muted">not in the tissue at step ${step}</span>`]);
    }
    const e = C.madeBy[c] >= 0 ? D.events[C.madeBy[c]] : null;
    rows.push(["made by", e ? `${esc(eventText(e))} at step ${e.step}` : "the seed tissue"]);
    if (e && e.reason) rows.push(["reason", `<span class="reason">${esc(e.reason)}</span>`]);
    const title = `<b>cell ${id}</b>${state.selected === id ? "" : ' <span class="muted">(click to keep)</span>'}`;
    box.innerHTML = `${title}<table>${rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("")}</table>`;
  }
  function showStatus() {
    const k = state.snap, e = lastEvent(k);
    const ev = e ? `last event: ${eventText(e)} at step ${e.step}${e.reason ? ` (${e.reason})` : ""}` : "no event yet";
    $("status").textContent = `step ${D.steps[k]} · ${D.nCells[k]} cells · ${D.nEdges[k]} edges · ${ev}`;
    $("status").title = $("status").textContent;
    for (const li of eventItems) li.classList.toggle("now", +li.dataset.snap === k);
  }

  // ---------------------------------------------------------------- legend
  function showLegend() {
    const c = colors[state.color], box = $("legend");
    box.innerHTML = `<b>${esc(c.label)}</b>`;
    if (c.categorical) {
      const n = c.labels.length, shown = c.labels.slice(0, 12);
      box.innerHTML += "<div>" + shown.map((lab, i) => {
        const t = c.table, j = 3 * (i % (t.length / 3));
        return `<div><span class="swatch" style="background:rgb(${t[j]},${t[j + 1]},${t[j + 2]})"></span>${esc(lab)}</div>`;
      }).join("") + (n > 12 ? `<div class="muted">+ ${n - 12} more</div>` : "") + "</div>";
      return;
    }
    const bar = document.createElement("canvas"), n = c.table.length / 3;
    bar.width = n; bar.height = 1;
    const g = bar.getContext("2d"), img = g.createImageData(n, 1);
    for (let i = 0; i < n; i++) img.data.set([c.table[3 * i], c.table[3 * i + 1], c.table[3 * i + 2], 255], 4 * i);
    g.putImageData(img, 0, 0);
    box.appendChild(bar);
    box.insertAdjacentHTML("beforeend", `<div class="ends"><span>${num(c.vmin)}</span><span>${num(c.vmax)}</span></div>`);
  }

  // ---------------------------------------------------------------- curves
  function plot(el, series, label, onPick) {
    const dpr = window.devicePixelRatio || 1, w = el.clientWidth, h = el.clientHeight;
    el.width = Math.round(w * dpr); el.height = Math.round(h * dpr);
    const g = el.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const pts = series.flatMap((s) => s.pts).filter((p) => p[1] !== null);
    const x0 = Math.min(D.steps[0], ...pts.map((p) => p[0])), x1 = Math.max(D.steps[K - 1], ...pts.map((p) => p[0]));
    const ys = pts.map((p) => p[1]), y0 = Math.min(...ys, Infinity), y1 = Math.max(...ys, -Infinity);
    const L = 42, R = 8, T = 16, B = 16;
    const X = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (w - L - R);
    const Y = (y) => h - B - ((y - y0) / (y1 - y0 || 1)) * (h - T - B);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#9a9aa3";
    g.fillText(label, L, 11);
    if (pts.length) {
      g.fillText(num(y1), 2, T + 4);
      g.fillText(num(y0), 2, h - B);
    } else {
      g.fillText("nothing logged", L + 8, h / 2);
    }
    g.fillText(String(x0), L, h - 3);
    g.textAlign = "right";
    g.fillText(`step ${x1}`, w - R, h - 3);
    g.textAlign = "left";
    for (const s of series) {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 1.5;
      g.beginPath();
      s.pts.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
      if (s.dots) s.pts.forEach((p) => g.fillRect(X(p[0]) - 2, Y(p[1]) - 2, 4, 4));
      else g.stroke();
    }
    g.strokeStyle = "#ffe673"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(X(D.steps[state.snap]), T - 4); g.lineTo(X(D.steps[state.snap]), h - B); g.stroke();
    el.onclick = (ev) => onPick(x0 + ((ev.offsetX - L) / (w - L - R)) * (x1 - x0));
  }
  function showCurves() {
    const jump = (step) => setSnap(nearestSnap(step));
    const loss = [{ pts: D.metrics.loss, color: "#3d8fd9" }];
    if (D.metrics.val.length) loss.push({ pts: D.metrics.val, color: "#ff7f0e", dots: true });
    plot($("loss"), loss, D.metrics.val.length ? "loss (train, ● eval)" : "loss (train)", jump);
    plot($("cells"), [{ pts: D.metrics.cells, color: "#2ca02c" }], "cells", jump);
  }
  function nearestSnap(step) {
    let best = 0;
    for (let k = 0; k < K; k++) if (Math.abs(D.steps[k] - step) < Math.abs(D.steps[best] - step)) best = k;
    return best;
  }

  // ---------------------------------------------------------------- controls
  const slider = $("slider");
  slider.max = String(K - 1);
  function setSnap(k) {
    state.snap = Math.max(0, Math.min(K - 1, k | 0));
    slider.value = String(state.snap);
    loadSnapshot(state.snap);
    showStatus(); showInfo(); showCurves(); redraw();
  }
  slider.addEventListener("input", () => setSnap(+slider.value));
  function stop() {
    clearInterval(state.playing); state.playing = null; $("play").innerHTML = "&#9654;";
  }
  $("play").addEventListener("click", () => {
    if (state.playing !== null) return stop();
    if (state.snap >= K - 1) setSnap(0);
    $("play").innerHTML = "&#10074;&#10074;";
    state.playing = setInterval(() => (state.snap >= K - 1 ? stop() : setSnap(state.snap + 1)), Math.max(60, 8000 / K));
  });
  const select = $("color");
  for (const name in colors) select.add(new Option(`${name}: ${colors[name].label}`, name));
  select.value = state.color;
  select.addEventListener("change", () => { state.color = select.value; showLegend(); redraw(); });

  const list = $("events");
  const eventItems = D.events.map((e, i) => {
    const li = document.createElement("li");
    li.dataset.snap = e.snap; li.dataset.index = i;
    li.innerHTML = `<span class="muted">${e.step}</span> ${esc(eventText(e))}${e.reason ? ` <span class="muted">· ${esc(e.reason)}</span>` : ""}`;
    li.addEventListener("click", () => {
      if (e.new_cells && e.new_cells.length) state.selected = e.new_cells[0];
      setSnap(e.snap);
    });
    list.appendChild(li);
    return li;
  });
  $("n-events").textContent = `(${D.events.length})`;
  $("title").textContent = D.run;

  // orbit by drag, zoom by wheel, hover and click to pick
  let drag = null;
  canvas.addEventListener("pointerdown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, moved: false };
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (drag) {
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) {
        canvas.classList.add("dragging");
        cam.yaw -= dx * 0.008;
        cam.pitch = Math.max(-1.5, Math.min(1.5, cam.pitch + dy * 0.008));
        drag.x = ev.clientX; drag.y = ev.clientY;
        redraw();
      }
      return;
    }
    const id = pick(ev.clientX, ev.clientY);
    const tip = $("tip");
    if (id !== state.hovered) { state.hovered = id; showInfo(); redraw(); }
    tip.hidden = id === null;
    if (id !== null) {
      const rect = canvas.getBoundingClientRect();
      tip.textContent = `cell ${id}`;
      tip.style.left = `${ev.clientX - rect.left + 12}px`; tip.style.top = `${ev.clientY - rect.top + 12}px`;
    }
  });
  canvas.addEventListener("pointerup", (ev) => {
    if (drag && !drag.moved) { state.selected = pick(ev.clientX, ev.clientY); showInfo(); redraw(); }
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener("pointerleave", () => { $("tip").hidden = true; });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    cam.dist = Math.max(cam.reach * 0.05, Math.min(cam.reach * 20, cam.dist * Math.exp(ev.deltaY * 0.001)));
    redraw();
  }, { passive: false });
  new ResizeObserver(() => { showCurves(); redraw(); }).observe($("view"));

  window.morphoPage = Object.freeze({
    get snapshot() { return state.snap; },
    get step() { return D.steps[state.snap]; },
    get nCells() { return state.drawnCells; }, // cells in the last frame drawn
    get nEdges() { return state.drawnEdges; },
    get frames() { return state.frames; },
    get readyMs() { return state.readyMs; }, // ms from navigation to the first frame
    get color() { return state.color; },
    get selected() { return state.selected; },
    get webgl() { return !!gl; },
    snapshotCells: (k) => D.nCells[k],
    nSnapshots: K,
    ids: () => Array.from(cur.cell, (c) => C.id[c]),
    project,
  });
  setSnap(K - 1);
  showLegend();
})();
