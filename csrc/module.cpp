// The Python module ddip_video._C: importing it loads the operator library.
// It exposes one flag so Python knows whether CUDA kernels were compiled in.
#include <Python.h>

#ifndef DDIP_VIDEO_WITH_CUDA
#define DDIP_VIDEO_WITH_CUDA 0
#endif

static struct PyModuleDef ddip_video_module = {
    PyModuleDef_HEAD_INIT, "_C", "ddip_video's C++/CUDA operators (torch.ops.ddip_video)",
    -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* module = PyModule_Create(&ddip_video_module);
  if (module != nullptr &&
      PyModule_AddIntConstant(module, "cuda_built", DDIP_VIDEO_WITH_CUDA) != 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
