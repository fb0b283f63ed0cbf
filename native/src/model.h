/* The model: config from the manifest, dense weights mapped from model_weights.bin, per-layer views. */
#ifndef FC_MODEL_H
#define FC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"
#include "util.h"

#define FC_MAX_EOS 8

struct fc_config {
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t n_layers;
    int32_t n_heads;          /* full attention query heads */
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t la_n_k_heads;     /* linear attention key/query heads */
    int32_t la_n_v_heads;
    int32_t la_k_dim;         /* per head */
    int32_t la_v_dim;
    int32_t la_conv_kernel;
    int32_t n_experts;
    int32_t n_experts_used;   /* the model's own K */
    int32_t moe_inter;
    int32_t shared_inter;
    int32_t norm_topk_prob;
    float rms_eps;
    float rope_theta;
    int32_t rotary_dim;       /* head_dim * partial_rotary_factor, even */
    int32_t max_position;
    int32_t tie_embeddings;
    int32_t eos[FC_MAX_EOS];
    int32_t n_eos;
    uint8_t * is_full_attn;   /* [n_layers] */
};

struct fc_layer {
    int32_t is_full;
    int32_t index_in_kind;      /* index among layers of the same kind (state arrays) */
    float * input_norm;         /* [hidden] plain multiplier (1 + w) */
    float * post_norm;          /* [hidden] */
    /* linear attention (GatedDeltaNet) */
    struct fc_matrix in_qkv;    /* [2*nk*dk + nv*dv, hidden] */
    struct fc_matrix in_z;      /* [nv*dv, hidden] */
    struct fc_matrix in_b;      /* [nv, hidden] */
    struct fc_matrix in_a;      /* [nv, hidden] */
    struct fc_matrix out_proj;  /* [hidden, nv*dv] */
    float * conv_w;             /* [conv_dim, kernel] */
    float * dt_bias;            /* [nv] */
    float * a_neg;              /* [nv] -exp(A_log) */
    float * la_norm;            /* [dv] plain multiplier */
    /* full attention */
    struct fc_matrix q_proj;    /* [n_heads * 2 * head_dim, hidden]: per head [query | gate] */
    struct fc_matrix k_proj;    /* [n_kv * head_dim, hidden] */
    struct fc_matrix v_proj;
    struct fc_matrix o_proj;    /* [hidden, n_heads * head_dim] */
    float * q_norm;             /* [head_dim] */
    float * k_norm;
    /* MoE */
    struct fc_matrix router;    /* [n_experts, hidden] */
    struct fc_matrix sh_gate;   /* [shared_inter, hidden] */
    struct fc_matrix sh_up;
    struct fc_matrix sh_down;   /* [hidden, shared_inter] */
    struct fc_matrix sh_expert_gate; /* [1, hidden] */
    int32_t has_shared;
};

struct fc_model {
    struct fc_config cfg;
    char source_format[32];
    void * map;                 /* model_weights.bin */
    size_t map_bytes;
    size_t dense_bytes;         /* bytes of the tensors we use */
    struct fc_matrix embed;     /* [vocab, hidden] */
    struct fc_matrix lm_head;   /* [vocab, hidden] */
    float * final_norm;         /* [hidden] */
    struct fc_layer * layers;
    int32_t n_full_layers;
    int32_t n_linear_layers;
};

/* Map model_weights.bin and read model_weights.json from `dir`; every inconsistency names the file. */
enum fc_status fc_model_load(struct fc_model * m, const char * dir, struct fc_error * err);
void fc_model_free(struct fc_model * m);

/* Derived sizes. */
static inline int32_t fc_la_conv_dim(const struct fc_config * c) {
    return 2 * c->la_n_k_heads * c->la_k_dim + c->la_n_v_heads * c->la_v_dim;
}

/* Read a whole small file into a NUL-terminated buffer (NULL + err on failure). */
char * fc_read_file(const char * path, size_t * len_out, struct fc_error * err);

/* Validate and fill a matrix from dtype/shape/bytes metadata (shared by the manifest and expert layout). */
enum fc_status fc_matrix_init(struct fc_matrix * m, const char * what, enum fc_dtype type, int32_t rows, int32_t cols,
                              int32_t group_size, const uint8_t * data, const uint8_t * scales, const uint8_t * biases,
                              struct fc_error * err);

#endif
