# Finds a Python interpreter that can `import torch` and `import numpy`.
# The python3 first on PATH may not see Debian's packages (a pyenv or venv
# interpreter), so /usr/bin/python3 is tried too. Sets YOLOXLOSS_TORCH_PYTHON.
if(NOT YOLOXLOSS_TORCH_PYTHON)
  find_program(_yl_path_python3 python3)
  foreach(candidate $ENV{YOLOXLOSS_PYTHON} /usr/bin/python3 ${_yl_path_python3})
    if(candidate AND EXISTS "${candidate}")
      execute_process(COMMAND "${candidate}" -c "import torch, numpy"
                      RESULT_VARIABLE _yl_rc OUTPUT_QUIET ERROR_QUIET)
      if(_yl_rc EQUAL 0)
        set(YOLOXLOSS_TORCH_PYTHON "${candidate}" CACHE FILEPATH "Python that can import torch")
        break()
      endif()
    endif()
  endforeach()
endif()
if(YOLOXLOSS_TORCH_PYTHON)
  message(STATUS "Python with torch: ${YOLOXLOSS_TORCH_PYTHON}")
endif()
