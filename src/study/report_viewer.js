/* report_viewer.js - the report's interactive map viewer (embedded in
 * report.html by report_viewer.c, which writes the data it reads from the
 * JSON block #cbq-viewer-data; its layout is described there and in
 * docs/report.md). Per category and test volume it draws one axial slice
 * of the CBCT in the chosen window, the category's map blended over it as
 * the report's figures blend it (viridis, opacity rising over the lowest
 * tenth of the scale), the structure's outline, and the volume's AE profile
 * along z with the shown slice marked. A slice's PNGs are decoded only when
 * it is shown (and kept in a small cache). No network, no library.
 *
 * For tests and people alike the viewer states what it shows on its root
 * element: data-category, data-volume, data-slice (requested) and
 * data-rendered ("category|volume|slice" once that slice is drawn). */
(function () {
  'use strict';
  var root = document.getElementById('cbq-viewer');
  var source = document.getElementById('cbq-viewer-data');
  if (!root || !source) return;
  var data = JSON.parse(source.textContent);
  /* A category whose test volumes all lack a consensus has nothing to show. */
  data.categories = data.categories.filter(function (c) { return c.entries.length > 0; });
  if (!data.categories.length || !data.volumes.length) {
    root.textContent = 'No test volume to show.';
    return;
  }

  var DISPLAY = 384;         /* the image's longer side on screen, CSS px */
  var PROFILE_W = 420, PROFILE_H = 150;
  var CACHE_SLICES = 600;    /* decoded PNGs kept */
  var VERMILLION = '#d55e00';

  var CSS =
    '.cbq-viewer{border:1px solid #dde3ea;background:#f8fafc;padding:10px 14px;margin:1em 0;' +
    'box-sizing:border-box;max-width:100%}' +
    '.cbq-viewer .cbqv-row{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:6px 0}' +
    '.cbq-viewer label{font-size:0.9em}' +
    '.cbq-viewer select{max-width:100%}' +
    '.cbq-viewer input[type=range]{width:200px;vertical-align:middle}' +
    '.cbq-viewer .cbqv-stage{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}' +
    '.cbq-viewer canvas{display:block}' +
    '.cbq-viewer .cbqv-image{background:#000;cursor:ns-resize}' +
    '.cbq-viewer .cbqv-profile{background:#fff;border:1px solid #e3e3e3;cursor:pointer}' +
    '.cbq-viewer .cbqv-info{font-family:"DejaVu Sans Mono",monospace;font-size:0.85em;margin:4px 0}' +
    '.cbq-viewer .cbqv-error{color:#b00020}' +
    '.cbq-viewer .cbqv-num{display:inline-block;min-width:4.5em;font-variant-numeric:tabular-nums}';

  function el(tag, attrs, parent) {
    var e = document.createElement(tag);
    for (var k in attrs) {
      if (k === 'text') e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  function fmt(x) {
    if (x === null || x === undefined || !isFinite(x)) return 'n/a';
    return String(Number(Number(x).toPrecision(4)));
  }

  var viridis = [];
  for (var i = 0; i < 256; i++) {
    var hex = data.viridis.substr(6 * i, 6);
    viridis.push([parseInt(hex.substr(0, 2), 16), parseInt(hex.substr(2, 2), 16),
                  parseInt(hex.substr(4, 2), 16)]);
  }

  /* ---- state ---- */
  var state = {
    cat: 0,
    entry: 0,       /* index into the category's entries */
    slice: 0,
    opacity: data.alpha,
    wlo: data.window[0],
    whi: data.window[1],
    outline: true
  };

  function category() { return data.categories[state.cat]; }
  function entry() { return category().entries[state.entry]; }
  function volume() { return data.volumes[entry().volume]; }

  /* The entry index of role r ("highest", ...) in category c, or -1. */
  function roleEntry(c, r) {
    var es = data.categories[c].entries;
    for (var j = 0; j < es.length; j++) if (es[j].role === r) return j;
    return -1;
  }

  /* The slice with the largest AE in the entry's profile (the middle one
   * without a profile). */
  function peakSlice(e, v) {
    var best = Math.floor(v.nz / 2), bestAe = -Infinity;
    e.profile.forEach(function (p) { if (p[1] !== null && p[1] > bestAe) { bestAe = p[1]; best = p[0]; } });
    return best;
  }

  /* ---- the page's elements ---- */
  var style = document.createElement('style');
  style.textContent = CSS;
  document.head.appendChild(style);
  root.textContent = '';

  var row1 = el('div', {class: 'cbqv-row'}, root);
  var catLabel = el('label', {text: 'Category '}, row1);
  var catSelect = el('select', {id: 'cbqv-category'}, catLabel);
  data.categories.forEach(function (c, j) { el('option', {value: String(j), text: c.name}, catSelect); });
  var volLabel = el('label', {text: 'Test volume '}, row1);
  var volSelect = el('select', {id: 'cbqv-volume'}, volLabel);
  var pickButtons = {};
  ['highest', 'median', 'lowest'].forEach(function (r) {
    pickButtons[r] = el('button', {type: 'button', id: 'cbqv-pick-' + r, text: r + ' AE'}, row1);
    pickButtons[r].addEventListener('click', function () {
      var j = roleEntry(state.cat, r);
      if (j >= 0) selectEntry(j);
    });
  });

  var row2 = el('div', {class: 'cbqv-row'}, root);
  var sliceLabel = el('label', {text: 'Slice '}, row2);
  var sliceInput = el('input', {type: 'range', id: 'cbqv-slice', min: '0', max: '0', step: '1', value: '0'}, sliceLabel);
  var sliceText = el('span', {class: 'cbqv-num', id: 'cbqv-slice-text'}, row2);
  var opLabel = el('label', {text: 'Map opacity '}, row2);
  var opInput = el('input', {type: 'range', id: 'cbqv-opacity', min: '0', max: '100', step: '1',
                             value: String(Math.round(100 * state.opacity))}, opLabel);
  var outLabel = el('label', {}, row2);
  var outInput = el('input', {type: 'checkbox', id: 'cbqv-outline'}, outLabel);
  outInput.checked = true;
  outLabel.appendChild(document.createTextNode(' structure outline'));

  var row3 = el('div', {class: 'cbqv-row'}, root);
  var wloLabel = el('label', {text: 'CT window low (HU) '}, row3);
  var wloInput = el('input', {type: 'number', id: 'cbqv-wlo', step: '10', min: String(data.ct.lo),
                              max: String(data.ct.hi), value: String(state.wlo), style: 'width:6em'}, wloLabel);
  var whiLabel = el('label', {text: 'high (HU) '}, row3);
  var whiInput = el('input', {type: 'number', id: 'cbqv-whi', step: '10', min: String(data.ct.lo),
                              max: String(data.ct.hi), value: String(state.whi), style: 'width:6em'}, whiLabel);
  var presets = [['study window', data.window[0], data.window[1]], ['soft tissue', -160, 240],
                 ['bone', -450, 1050], ['full', data.ct.lo, data.ct.hi]];
  presets.forEach(function (p, j) {
    var b = el('button', {type: 'button', id: 'cbqv-window-' + j, text: p[0]}, row3);
    b.addEventListener('click', function () { setWindow(p[1], p[2]); });
  });

  var stage = el('div', {class: 'cbqv-stage'}, root);
  var imageBox = el('div', {}, stage);
  var canvas = el('canvas', {class: 'cbqv-image', id: 'cbqv-image', width: '1', height: '1'}, imageBox);
  var info = el('div', {class: 'cbqv-info', id: 'cbqv-info'}, imageBox);
  var side = el('div', {}, stage);
  var profile = el('canvas', {class: 'cbqv-profile', id: 'cbqv-profile', width: String(PROFILE_W),
                              height: String(PROFILE_H)}, side);
  el('div', {class: 'cbqv-info', text: 'AE per axial slice along z (mm); click to go to a slice.'}, side);
  var bar = el('canvas', {id: 'cbqv-colorbar', width: String(PROFILE_W), height: '42'}, side);
  var message = el('div', {class: 'cbqv-info cbqv-error', id: 'cbqv-error'}, side);

  var off = document.createElement('canvas');   /* the slice at its stored size */
  var offCtx = off.getContext('2d');
  var reader = document.createElement('canvas'); /* reads decoded PNG bytes */
  var readerCtx = reader.getContext('2d', {willReadFrequently: true});

  /* ---- decoding, lazily and cached ---- */
  var cache = new Map();
  function decode(uri, w, h) {
    var hit = cache.get(uri);
    if (hit) {
      cache.delete(uri);
      cache.set(uri, hit);
      return hit;
    }
    var p = new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () {
        if (img.naturalWidth !== w || img.naturalHeight !== h) {
          reject(new Error('a slice decoded to ' + img.naturalWidth + 'x' + img.naturalHeight +
                           ', expected ' + w + 'x' + h));
          return;
        }
        reader.width = w;
        reader.height = h;
        readerCtx.drawImage(img, 0, 0);
        resolve(readerCtx.getImageData(0, 0, w, h).data);
      };
      img.onerror = function () { reject(new Error('a slice image did not decode')); };
      img.src = uri;
    });
    cache.set(uri, p);
    if (cache.size > CACHE_SLICES) cache.delete(cache.keys().next().value);
    return p;
  }

  /* ---- drawing ---- */
  function greyTable() {
    var t = new Float64Array(256), span = data.ct.hi - data.ct.lo;
    for (var q = 0; q < 256; q++) {
      var hu = data.ct.lo + q * span / 255;
      var g = (hu - state.wlo) / (state.whi - state.wlo);
      t[q] = g < 0 ? 0 : g > 1 ? 1 : g;
    }
    return t;
  }

  /* Per map byte: colour index and opacity (0: the CT shows through). */
  function mapTable(c, e) {
    var idx = new Uint8Array(256), alpha = new Float64Array(256);
    var span = c.hi - c.lo;
    for (var q = 1; q < 256 && span > 0; q++) {
      var v = e.lo + q * (e.hi - e.lo) / 255;
      if (!(v > c.lo)) continue;
      var t = Math.min(1, (v - c.lo) / span);
      idx[q] = Math.round(t * 255);
      alpha[q] = state.opacity * (t < data.ramp ? t / data.ramp : 1);
    }
    return {idx: idx, alpha: alpha};
  }

  function displaySize(v) {
    var hd = v.h * v.aspect, s = DISPLAY / Math.max(v.w, hd);
    return [Math.round(v.w * s), Math.round(hd * s)];
  }

  function drawSlice(c, e, v, ct, mp) {
    off.width = v.w;
    off.height = v.h;
    var out = offCtx.createImageData(v.w, v.h), o = out.data;
    var grey = greyTable(), mt = mp ? mapTable(c, e) : null;
    for (var p = 0, n = v.w * v.h; p < n; p++) {
      var g = grey[ct[4 * p]], r = g, gg = g, b = g;
      if (mt) {
        var q = mp[4 * p], a = mt.alpha[q];
        if (a > 0) {
          var col = viridis[mt.idx[q]];
          r = a * col[0] / 255 + (1 - a) * g;
          gg = a * col[1] / 255 + (1 - a) * g;
          b = a * col[2] / 255 + (1 - a) * g;
        }
      }
      o[4 * p] = Math.round(255 * r);
      o[4 * p + 1] = Math.round(255 * gg);
      o[4 * p + 2] = Math.round(255 * b);
      o[4 * p + 3] = 255;
    }
    offCtx.putImageData(out, 0, 0);
    var size = displaySize(v);
    if (canvas.width !== size[0] || canvas.height !== size[1]) {
      canvas.width = size[0];
      canvas.height = size[1];
    }
    var ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, size[0], size[1]);
    if (mp && state.outline && e.structure) drawOutline(ctx, v, mp, size[0] / v.w, size[1] / v.h);
  }

  /* Crisp edges wherever a structure pixel meets a non-structure pixel. */
  function drawOutline(ctx, v, mp, sx, sy) {
    var w = v.w, h = v.h;
    function inside(x, y) { return x >= 0 && y >= 0 && x < w && y < h && mp[4 * (y * w + x) + 1] > 127; }
    ctx.beginPath();
    for (var y = 0; y < h; y++) {
      for (var x = 0; x < w; x++) {
        if (!inside(x, y)) continue;
        var x0 = x * sx, y0 = y * sy;
        if (!inside(x - 1, y)) { ctx.moveTo(x0, y0); ctx.lineTo(x0, y0 + sy); }
        if (!inside(x + 1, y)) { ctx.moveTo(x0 + sx, y0); ctx.lineTo(x0 + sx, y0 + sy); }
        if (!inside(x, y - 1)) { ctx.moveTo(x0, y0); ctx.lineTo(x0 + sx, y0); }
        if (!inside(x, y + 1)) { ctx.moveTo(x0, y0 + sy); ctx.lineTo(x0 + sx, y0 + sy); }
      }
    }
    ctx.strokeStyle = VERMILLION;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }

  /* The profile's x range: the volume's z extent. */
  function zRange(v) {
    var lo = Math.min(v.z[0], v.z[v.nz - 1]), hi = Math.max(v.z[0], v.z[v.nz - 1]);
    if (hi === lo) { lo -= 1; hi += 1; }
    return [lo, hi];
  }

  var PAD = {l: 52, r: 10, t: 10, b: 26};
  function drawProfile(e, v) {
    var ctx = profile.getContext('2d'), W = PROFILE_W, H = PROFILE_H;
    ctx.clearRect(0, 0, W, H);
    var zr = zRange(v), pts = e.profile.filter(function (p) { return p[1] !== null; });
    var ylo = 0, yhi = 0;
    pts.forEach(function (p) { ylo = Math.min(ylo, p[1]); yhi = Math.max(yhi, p[1]); });
    if (yhi === ylo) yhi = ylo + 1;
    function X(z) { return PAD.l + (z - zr[0]) / (zr[1] - zr[0]) * (W - PAD.l - PAD.r); }
    function Y(a) { return H - PAD.b - (a - ylo) / (yhi - ylo) * (H - PAD.t - PAD.b); }
    ctx.strokeStyle = '#999';
    ctx.lineWidth = 1;
    ctx.strokeRect(PAD.l, PAD.t, W - PAD.l - PAD.r, H - PAD.t - PAD.b);
    ctx.fillStyle = '#333';
    ctx.font = '11px "DejaVu Sans", sans-serif';
    ctx.textAlign = 'right';
    ctx.fillText(fmt(yhi), PAD.l - 4, PAD.t + 9);
    ctx.fillText(fmt(ylo), PAD.l - 4, H - PAD.b);
    ctx.textAlign = 'left';
    ctx.fillText(fmt(zr[0]) + ' mm', PAD.l, H - 8);
    ctx.textAlign = 'right';
    ctx.fillText(fmt(zr[1]) + ' mm', W - PAD.r, H - 8);
    ctx.textAlign = 'center';
    ctx.fillText('z (superior)', (W + PAD.l) / 2, H - 8);
    ctx.strokeStyle = '#0072b2';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach(function (p, j) {
      var x = X(v.z[p[0]]), y = Y(p[1]);
      if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
    var xs = X(v.z[state.slice]);
    ctx.strokeStyle = VERMILLION;
    ctx.beginPath();
    ctx.moveTo(xs, PAD.t);
    ctx.lineTo(xs, H - PAD.b);
    ctx.stroke();
  }

  function drawColorbar(c) {
    var ctx = bar.getContext('2d'), W = PROFILE_W, x0 = PAD.l, x1 = W - PAD.r;
    ctx.clearRect(0, 0, W, 42);
    for (var x = x0; x < x1; x++) {
      var col = viridis[Math.round((x - x0) / (x1 - x0 - 1) * 255)];
      ctx.fillStyle = 'rgb(' + col[0] + ',' + col[1] + ',' + col[2] + ')';
      ctx.fillRect(x, 4, 1, 14);
    }
    ctx.fillStyle = '#333';
    ctx.font = '11px "DejaVu Sans", sans-serif';
    ctx.textAlign = 'left';
    ctx.fillText(fmt(c.lo), x0, 32);
    ctx.textAlign = 'right';
    ctx.fillText(fmt(c.hi), x1, 32);
    ctx.textAlign = 'center';
    ctx.fillText(data.has_maps ? 'raw ' + data.method + ' map value (a.u.)' : 'no maps saved',
                 (x0 + x1) / 2, 32);
  }

  function profileAt(e, k) {
    for (var j = 0; j < e.profile.length; j++) if (e.profile[j][0] === k) return e.profile[j][1];
    return null;
  }

  var renderToken = 0;
  function render() {
    var token = ++renderToken, c = category(), e = entry(), v = volume(), k = state.slice;
    var key = c.name + '|' + v.id + '|' + k;
    root.setAttribute('data-category', c.name);
    root.setAttribute('data-volume', v.id);
    root.setAttribute('data-slice', String(k));
    sliceText.textContent = k + ' / ' + (v.nz - 1);
    drawProfile(e, v);
    var jobs = [decode(v.ct[k], v.w, v.h), e.slices[k] ? decode(e.slices[k], v.w, v.h) : null];
    Promise.all(jobs).then(function (px) {
      if (token !== renderToken) return;
      drawSlice(c, e, v, px[0], px[1]);
      var ae = profileAt(e, k);
      info.textContent = v.id + ' | ' + c.name + ' | slice ' + k + ' of ' + v.nz + ' | z ' +
                         fmt(v.z[k]) + ' mm | AE in slice ' + (ae === null ? 'not computed' : fmt(ae));
      message.textContent = '';
      root.setAttribute('data-rendered', key);
    }).catch(function (err) {
      message.textContent = 'Cannot show this slice: ' + err.message;
      console.error('cbctiq viewer: ' + err.message);
    });
  }

  /* ---- changing what is shown ---- */
  function fillVolumes() {
    var c = category(), order = c.entries.map(function (e, j) { return j; });
    order.sort(function (a, b) { return c.entries[b].ae - c.entries[a].ae; });
    volSelect.textContent = '';
    order.forEach(function (j) {
      var e = c.entries[j];
      var text = data.volumes[e.volume].id + ': AE ' + fmt(e.ae) + ', consensus ' + fmt(e.consensus) +
                 (e.role ? ' (' + e.role + ' AE)' : '');
      el('option', {value: String(j), text: text}, volSelect);
    });
    ['highest', 'median', 'lowest'].forEach(function (r) { pickButtons[r].disabled = roleEntry(state.cat, r) < 0; });
    drawColorbar(c);
  }

  function setSlice(k) {
    var v = volume();
    k = Math.max(0, Math.min(v.nz - 1, Math.round(k)));
    state.slice = k;
    sliceInput.value = String(k);
    render();
  }

  function selectEntry(j) {
    state.entry = j;
    volSelect.value = String(j);
    var e = entry(), v = volume();
    sliceInput.max = String(v.nz - 1);
    outInput.disabled = !e.structure;
    outLabel.title = e.structure ? '' : 'no structure for this category in this volume';
    setSlice(Math.min(state.slice, v.nz - 1));
  }

  function selectCategory(c) {
    var id = volume().id;
    state.cat = c;
    catSelect.value = String(c);
    fillVolumes();
    var es = category().entries, j = -1;
    for (var n = 0; n < es.length; n++) if (data.volumes[es[n].volume].id === id) j = n;
    selectEntry(j >= 0 ? j : Math.max(0, roleEntry(c, 'highest')));
  }

  function setWindow(lo, hi) {
    lo = Number(lo);
    hi = Number(hi);
    if (!isFinite(lo) || !isFinite(hi) || hi <= lo) return; /* keep the last valid window */
    state.wlo = lo;
    state.whi = hi;
    wloInput.value = String(lo);
    whiInput.value = String(hi);
    render();
  }

  catSelect.addEventListener('change', function () { selectCategory(Number(catSelect.value)); });
  volSelect.addEventListener('change', function () { selectEntry(Number(volSelect.value)); });
  sliceInput.addEventListener('input', function () { setSlice(Number(sliceInput.value)); });
  opInput.addEventListener('input', function () { state.opacity = Number(opInput.value) / 100; render(); });
  outInput.addEventListener('change', function () { state.outline = outInput.checked; render(); });
  wloInput.addEventListener('change', function () { setWindow(wloInput.value, state.whi); });
  whiInput.addEventListener('change', function () { setWindow(state.wlo, whiInput.value); });
  canvas.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    if (ev.deltaY) setSlice(state.slice + (ev.deltaY > 0 ? 1 : -1));
  }, {passive: false});
  profile.addEventListener('click', function (ev) {
    var v = volume(), rect = profile.getBoundingClientRect(), zr = zRange(v);
    var x = (ev.clientX - rect.left) * PROFILE_W / rect.width;
    var z = zr[0] + (x - PAD.l) / (PROFILE_W - PAD.l - PAD.r) * (zr[1] - zr[0]);
    var best = 0;
    for (var k = 1; k < v.nz; k++) if (Math.abs(v.z[k] - z) < Math.abs(v.z[best] - z)) best = k;
    setSlice(best);
  });

  /* Start on the category's highest-AE volume at its peak slice. */
  fillVolumes();
  var first = Math.max(0, roleEntry(0, 'highest'));
  state.entry = first;
  state.slice = peakSlice(category().entries[first], data.volumes[category().entries[first].volume]);
  selectEntry(first);
})();
