/*
 * The GPU backends as the engine selects them (--backend metal | metal-emu | auto): the Metal device or its
 * emulator, and the Metal layer backend over it (metal-forward.c) as the engine's layer-level backend. Compiled
 * twice: with FC_HAVE_METAL (macOS)
 * or FC_HAVE_METAL_EMU (a C++ compiler) into the engine, and with neither into the library the native tests
 * link (there every GPU backend is "not part of this build").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
#include "metal/device.h"
#include "metal/metal-forward.h"
#endif

int fc_engine_backend_built(const char * name) {
#if defined(FC_HAVE_METAL)
    if (strcmp(name, "metal") == 0) return 1;
#endif
#if defined(FC_HAVE_METAL_EMU)
    if (strcmp(name, "metal-emu") == 0) return 1;
#endif
    return strcmp(name, "cpu") == 0 || strncmp(name, "cpu:", 4) == 0;
}

/* "auto": metal when this build has it and the system has a GPU (tried once at start-up: the device found is handed
   back in *created and used, not created again), else cpu. */
const char * fc_engine_resolve_backend(const char * name, struct fc_gpu ** created) {
    *created = NULL;
    if (strcmp(name, "auto") != 0) return name;
#if defined(FC_HAVE_METAL)
    struct fc_error err;
    struct fc_gpu * g = fc_gpu_metal_create(fc_metal_source, &err);
    if (g) {
        *created = g;
        return "metal";
    }
#endif
    return "cpu";
}

void fc_gpu_release(struct fc_gpu * g) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    if (g) g->ops->destroy(g);
#endif
}

enum fc_status fc_engine_gpu_open(struct fc_engine * e, const char * name, struct fc_gpu * created, struct fc_error * err) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    struct fc_gpu * g = created;
    err->status = FC_STATUS_OK;
#if defined(FC_HAVE_METAL)
    if (!g && strcmp(name, "metal") == 0) g = fc_gpu_metal_create(fc_metal_source, err);
#endif
#if defined(FC_HAVE_METAL_EMU)
    if (!g && strcmp(name, "metal-emu") == 0) g = fc_gpu_emu_create(fc_metal_source, e->n_threads, err);
#endif
    if (!g) {
        if (err->status == FC_STATUS_OK) goto not_built;
        return err->status;
    }
    enum fc_status st = fc_metal_layers_init(&e->lb, g, e, err);
    if (st != FC_STATUS_OK) {
        g->ops->destroy(g);
        fc_layer_cpu_init(&e->lb, e);
        return st;
    }
    e->gpu = g;
    e->backend_name = g->ops->name;
    return FC_STATUS_OK;
not_built:
#endif
    fc_gpu_release(created);
    return fc_error_set(err, FC_STATUS_BAD_REQUEST, "the %s backend is not part of this build (%s)", name,
#if defined(FC_HAVE_METAL)
                        "it has: cpu, metal"
#elif defined(FC_HAVE_METAL_EMU)
                        "it has: cpu, metal-emu"
#else
                        "it has: cpu"
#endif
    );
}

void fc_engine_gpu_close(struct fc_engine * e) {
#if defined(FC_HAVE_METAL) || defined(FC_HAVE_METAL_EMU)
    if (e->lb.ops) e->lb.ops->free(&e->lb);
    if (e->gpu) e->gpu->ops->destroy(e->gpu);
#endif
    e->lb.ops = NULL;
    e->gpu = NULL;
}
