# Work around the CMake package of the PyPI ROOT wheel (root 0.1a12, ROOT 6.40).
#
# The wheel's ROOTConfig-targets*.cmake point the imported targets (ROOT::Core...) at
# "<site-packages>/../mock_site_packages/ROOT/...", a path of the wheel's build machine,
# so find_package(ROOT CONFIG) stops with "The imported target ROOT::Core references the
# file .../mock_site_packages/ROOT/lib/libCore.so but this file does not exist".
# If ROOT_DIR is such a package, copy it to the build directory with the real paths
# and point ROOT_DIR at the copy; any other ROOT (LCG, conda, a source build) is untouched.
#
# Usage: include(dyroot_root_wheel.cmake) before find_package(ROOT CONFIG ...).

function(dyroot_fix_root_wheel)
  if(NOT ROOT_DIR)
    find_path(_dyroot_root_cfg ROOTConfig.cmake PATH_SUFFIXES cmake)
    if(NOT _dyroot_root_cfg)
      return()
    endif()
    set(ROOT_DIR "${_dyroot_root_cfg}")
  endif()
  set(_targets "${ROOT_DIR}/ROOTConfig-targets.cmake")
  if(NOT EXISTS "${_targets}")
    return()
  endif()
  file(READ "${_targets}" _text)
  string(FIND "${_text}" "mock_site_packages" _pos)
  get_filename_component(_root "${ROOT_DIR}/.." REALPATH)
  get_filename_component(_site "${_root}/.." REALPATH)
  if(_pos EQUAL -1 OR EXISTS "${_site}/../mock_site_packages/ROOT")
    return()
  endif()
  set(_copy "${CMAKE_BINARY_DIR}/root-cmake")
  file(REMOVE_RECURSE "${_copy}")
  file(COPY "${ROOT_DIR}/" DESTINATION "${_copy}")
  foreach(_f ROOTConfig-targets.cmake ROOTConfig-targets-release.cmake ROOTConfig.cmake)
    if(EXISTS "${_copy}/${_f}")
      file(READ "${_copy}/${_f}" _t)
      string(REPLACE "\${_IMPORT_PREFIX}/mock_site_packages" "${_site}" _t "${_t}")
      string(REPLACE "\"\${_IMPORT_PREFIX}/include\"" "\"${_root}/include\"" _t "${_t}")
      string(REPLACE "\${_thisdir}/../" "${_root}/" _t "${_t}")
      file(WRITE "${_copy}/${_f}" "${_t}")
    endif()
  endforeach()
  message(STATUS "dyroot: the ROOT wheel's CMake package has wrong paths (mock_site_packages); using a fixed copy in ${_copy}")
  set(ROOT_DIR "${_copy}" CACHE PATH "ROOT's CMake package (fixed copy of the wheel's)" FORCE)
endfunction()

dyroot_fix_root_wheel()
