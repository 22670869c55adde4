/* cam_private.h - the cbq_cam object shared by the files of src/attrib. */
#ifndef CBQ_ATTRIB_CAM_PRIVATE_H
#define CBQ_ATTRIB_CAM_PRIVATE_H

#include <stdio.h>

#include "cbctiq/attrib.h"

struct cbq_cam {
    cbq_net *net;                 /* borrowed */
    const cbq_model_spec *spec;   /* the net's */
    cbq_attrib_options opt;
    size_t max_batch, n_out, n;   /* n: slices of the last run */
    size_t (*shapes)[3];          /* per layer output {C, H, W} */
    size_t target;                /* layer index */
    char target_name[CBQ_NAME_MAX];
    size_t K, h, w;               /* target activation per slice */
    size_t C, H, W;               /* model input: channels and size */
    int identity;
    double bias[CBQ_MAX_OUTPUTS];
    float *pred;                  /* [B, n_out] */
    float *dout;                  /* [B, n_out] */
    float *map_feature;           /* [n_out, B, h, w] chosen maps */
    float *map_input;             /* [n_out, B, H, W] chosen maps */
    float *map_input_dst[CBQ_MAX_OUTPUTS]; /* NULL, or where this batch's maps of output c go
                                              instead of map_input: the caller's [n, H, W]
                                              (cbq_attrib_volume), saving a copy and a buffer */
    float *pre_feature;           /* [B, h, w] scratch */
    float *pre_input;             /* [B, H, W] scratch */
    cbq_cam_slice_sum *sums;      /* [n_out, B] */
    double *eig_work;             /* Eigen-CAM */
    float *act_copy;              /* Score-CAM: [B, K, h, w] */
    float *x_copy;                /* Score-CAM, pixel methods: [B, H, W] */
    float *masks;                 /* Score-CAM: [K, H, W] */
    double *scores;               /* Score-CAM: [K, n_out] */
    float *path;                  /* pixel methods: [B, H, W] */
    double *grad_acc;             /* pixel methods: [n_out, B, H, W] */
    size_t *slice_of;             /* pixel methods: [B] slice of each path point */
    double *weight_of;            /* pixel methods: [B] quadrature weight */
};

void cam_finish_feature(cbq_cam *cam, size_t c, size_t s, const float *pre);
void cam_finish_input(cbq_cam *cam, size_t c, size_t s, const float *pre);
void cam_fill_dout(cbq_cam *cam, size_t n, size_t c);
int cam_run_scorecam(cbq_cam *cam, const float *x, size_t n, cbq_error *err);
int cam_run_pixel(cbq_cam *cam, const float *x, size_t n, cbq_error *err);

#endif
