//! The im2col side of the convolutions: the geometry of one convolution, the `[c*kh*kw, images *
//! ho*wo]` matrices its products multiply, and the buffers a thread reuses for them.

use burn::backend::ops::ConvOptions;

/// Depth of the matrix products (output positions times images) to aim for: deep enough that
/// the accumulator `[O, C*kh*kw]` is read and written rarely compared with the work.
const TARGET_DEPTH: usize = 512;

/// Images per matrix product so that its depth (images times output positions) reaches
/// [`TARGET_DEPTH`], within `1..=n`.
pub(super) fn images_per_product(positions: usize, n: usize) -> usize {
    TARGET_DEPTH.div_ceil(positions).clamp(1, n)
}

/// Shapes and options of one convolution.
pub(super) struct Geometry {
    pub(super) x_dims: [usize; 4],
    /// Channel groups, and input channels in each.
    pub(super) groups: usize,
    pub(super) group_channels: usize,
    pub(super) out: [usize; 2],
    pub(super) kernel: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
    pub(super) dilation: [usize; 2],
}

impl Geometry {
    /// A 1x1 kernel with stride 1 and no padding: the output positions are the input's, and the
    /// im2col matrix of one image is the image itself.
    pub(super) fn pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// For a stride-1 convolution whose output rows are as wide as its input's, with a multiple
    /// of 16 output positions (and not [`Self::pointwise`]), each tap's shift of the input plane and its masks
    /// of valid positions (16 per mask), tap `ki * kw + kj` after tap `ki * kw + kj - 1`: the
    /// im2col matrix as [`crate::flex::bf16_gemm::ShiftedPlanes`] reads it. `None` otherwise.
    pub(super) fn shifted_taps(&self) -> Option<(Vec<isize>, Vec<u16>)> {
        let [_, _, h, w] = self.x_dims;
        let [ho, wo] = self.out;
        let positions = ho * wo;
        if self.stride != [1, 1] || wo != w || !positions.is_multiple_of(16) || self.pointwise() {
            return None;
        }
        let [kh, kw] = self.kernel;
        let [ph, pw] = self.padding.map(|p| p as isize);
        let [dh, dw] = self.dilation.map(|d| d as isize);
        let (mut shifts, mut masks) = (Vec::new(), vec![0u16; kh * kw * positions / 16]);
        for ki in 0..kh as isize {
            for kj in 0..kw as isize {
                let (dy, dx) = (ki * dh - ph, kj * dw - pw);
                let tap = shifts.len();
                shifts.push(dy * w as isize + dx);
                for q in 0..positions {
                    let (ih, iw) = ((q / wo) as isize + dy, (q % wo) as isize + dx);
                    if (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw) {
                        masks[tap * positions / 16 + q / 16] |= 1 << (q % 16);
                    }
                }
            }
        }
        Some((shifts, masks))
    }

    /// The convolution of `x_dims` input by a `w_dims` weight (`[o, c / groups, kh, kw]`) with
    /// `options`.
    ///
    /// # Panics
    /// With asymmetric padding (not handled here), if the channels do not split into the
    /// groups as the weight says, or if the dilated kernel does not fit the padded input.
    pub(super) fn new(x_dims: [usize; 4], w_dims: [usize; 4], options: &ConvOptions<2>) -> Self {
        assert!(
            !options.is_asymmetric(),
            "the im2col convolution needs symmetric padding"
        );
        let [_, c, h, w] = x_dims;
        let [o, group_channels, kh, kw] = w_dims;
        let groups = options.groups;
        assert!(
            groups > 0 && group_channels * groups == c && o % groups == 0,
            "{c} input channels and {o} output channels do not make {groups} groups of \
             {group_channels} input channels (the weight's second dimension)"
        );
        let kernel = [kh, kw];
        let padding = options.padding_begin();
        let side = |i: usize, size: usize| {
            (size + 2 * padding[i])
                .checked_sub(options.dilation[i] * (kernel[i] - 1) + 1)
                .map(|v| v / options.stride[i] + 1)
        };
        let (Some(ho), Some(wo)) = (side(0, h), side(1, w)) else {
            panic!("the kernel ({kh}x{kw}) does not fit the padded input ({h}x{w})");
        };
        Geometry {
            x_dims,
            groups,
            group_channels,
            out: [ho, wo],
            kernel,
            stride: options.stride,
            padding,
            dilation: options.dilation,
        }
    }
}

/// Buffers reused across the chunks of one thread.
#[derive(Default)]
pub(super) struct Scratch {
    /// The im2col matrix `[c*kh*kw, depth]`.
    pub(super) cols: Vec<f32>,
    /// An `[o, depth]` matrix of several images side by side: the packed output gradients
    /// (weight gradient) or the product before it is unpacked into NCHW (forward).
    pub(super) packed: Vec<f32>,
}

/// The `[group_channels*kh*kw, images * ho*wo]` row-major matrix of `images` that the weight
/// of `group` multiplies: for a 1x1 convolution of one image, the image's own channels of the
/// group (no copy); else [`im2col`] into `cols`.
pub(super) fn columns<'a>(
    x: &'a [f32],
    g: &Geometry,
    group: usize,
    images: std::ops::Range<usize>,
    cols: &'a mut Vec<f32>,
) -> &'a [f32] {
    if g.pointwise() && images.len() == 1 {
        let [_, c, h, w] = g.x_dims;
        let plane = h * w;
        let start = (images.start * c + group * g.group_channels) * plane;
        &x[start..start + g.group_channels * plane]
    } else {
        im2col(x, g, group, images, cols);
        cols
    }
}

/// im2col of `images` over the input channels of `group`: one row per `(channel of the group,
/// ki, kj)`, one column per (image, output position), `[group_channels*kh*kw, images * ho*wo]`
/// row-major in `cols` (resized to fit).
fn im2col(
    x: &[f32],
    g: &Geometry,
    group: usize,
    images: std::ops::Range<usize>,
    cols: &mut Vec<f32>,
) {
    let [_, c, h, w] = g.x_dims;
    let [ho, wo] = g.out;
    let [kh, kw] = g.kernel;
    let positions = ho * wo;
    let depth = images.len() * positions;
    let channels = group * g.group_channels..(group + 1) * g.group_channels;
    cols.resize(g.group_channels * kh * kw * depth, 0.0);
    for (row_channel, ci) in channels.enumerate() {
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (row_channel * kh + ki) * kw + kj;
                let dst_row = &mut cols[row * depth..(row + 1) * depth];
                for (slot, img) in images.clone().enumerate() {
                    let plane = &x[(img * c + ci) * h * w..(img * c + ci + 1) * h * w];
                    let dst = &mut dst_row[slot * positions..(slot + 1) * positions];
                    im2col_row(plane, [h, w], dst, [ho, wo], [ki, kj], g);
                }
            }
        }
    }
}

/// One im2col row segment: for every output position, the input value kernel tap `(ki, kj)`
/// reads (zero in the padding).
fn im2col_row(
    plane: &[f32],
    [h, w]: [usize; 2],
    dst: &mut [f32],
    [ho, wo]: [usize; 2],
    [ki, kj]: [usize; 2],
    g: &Geometry,
) {
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let [dh, dw] = g.dilation;
    let col_offset = (kj * dw) as isize - pw as isize;
    // output columns whose input column lies inside [0, w)
    let first = if col_offset < 0 {
        ((-col_offset) as usize).div_ceil(sw)
    } else {
        0
    };
    let last = if (w as isize) > col_offset {
        ((w as isize - col_offset) as usize).div_ceil(sw).min(wo)
    } else {
        0
    };
    if sh == 1 && sw == 1 && wo == w && first < last {
        shifted_plane(
            plane,
            [h, w],
            dst,
            ho,
            [first, last],
            ki * dh,
            [ph as isize, col_offset],
        );
        return;
    }
    for oh in 0..ho {
        let out = &mut dst[oh * wo..(oh + 1) * wo];
        let ih = (oh * sh + ki * dh) as isize - ph as isize;
        if ih < 0 || ih >= h as isize || first >= last {
            out.fill(0.0);
            continue;
        }
        let row = &plane[ih as usize * w..(ih as usize + 1) * w];
        out[..first].fill(0.0);
        out[last..].fill(0.0);
        let start = (first * sw) as isize + col_offset;
        if sw == 1 {
            let start = start as usize;
            out[first..last].copy_from_slice(&row[start..start + (last - first)]);
        } else {
            for (k, v) in out[first..last].iter_mut().enumerate() {
                *v = row[(start + (k * sw) as isize) as usize];
            }
        }
    }
}

/// [`im2col_row`] at stride 1 with output rows as wide as the input's (`same` padding): the
/// segment is the plane shifted by `(row_offset - ph) * w + col_offset`, so one copy of the
/// rows that fall inside it, then zeros over the rows outside and each row's padded columns
/// (`..first` and `last..`, which the shifted copy filled from the neighbouring rows).
#[allow(clippy::too_many_arguments)]
fn shifted_plane(
    plane: &[f32],
    [h, w]: [usize; 2],
    dst: &mut [f32],
    ho: usize,
    [first, last]: [usize; 2],
    row_offset: usize,
    [ph, col_offset]: [isize; 2],
) {
    // output rows oh whose input row oh + row_offset - ph lies inside [0, h)
    let shift = row_offset as isize - ph;
    let top = (-shift).clamp(0, ho as isize) as usize;
    let bottom = (h as isize - shift).clamp(top as isize, ho as isize) as usize;
    dst[..top * w].fill(0.0);
    dst[bottom * w..ho * w].fill(0.0);
    if top == bottom {
        return;
    }
    // dst[oh * w + ow] = plane[(oh + shift) * w + ow + col_offset] for the valid (oh, ow)
    let begin = top * w + first;
    let end = (bottom - 1) * w + last;
    let src = ((top as isize + shift) * w as isize + first as isize + col_offset) as usize;
    dst[begin..end].copy_from_slice(&plane[src..src + (end - begin)]);
    for oh in top..bottom {
        let row = &mut dst[oh * w..(oh + 1) * w];
        match first {
            0 => {}
            1 => row[0] = 0.0,
            _ => row[..first].fill(0.0),
        }
        match w - last {
            0 => {}
            1 => row[w - 1] = 0.0,
            _ => row[last..].fill(0.0),
        }
    }
}
