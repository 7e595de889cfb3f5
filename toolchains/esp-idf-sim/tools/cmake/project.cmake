# ESP-IDF stand-in (esp-idf-sim): what a project's top-level CMakeLists.txt includes.
#
#   cmake_minimum_required(VERSION 3.16)
#   include($ENV{IDF_PATH}/tools/cmake/project.cmake)
#   project(blink)
#
# Like ESP-IDF, this overrides project(): the builtin runs as _project(), then the components
# (IDF_PATH/components/*, the project's main/ and components/*/, EXTRA_COMPONENT_DIRS) are
# added; each component's CMakeLists.txt calls idf_component_register(). Components are built as
# static libraries with the host C compiler against the stub SDK headers, linked into
# <project>.elf (a host executable whose main() calls app_main()), and post-build steps produce
# the ESP image files (<project>.bin, bootloader/bootloader.bin, partition_table/partition-table.bin).
include_guard(GLOBAL)

if(NOT DEFINED IDF_PATH)
    if(DEFINED ENV{IDF_PATH})
        set(IDF_PATH "$ENV{IDF_PATH}")
    else()
        get_filename_component(IDF_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
    endif()
endif()
file(TO_CMAKE_PATH "${IDF_PATH}" IDF_PATH)
set(ENV{IDF_PATH} "${IDF_PATH}")
include("${IDF_PATH}/tools/cmake/version.cmake")
set(IDF_VER "v${IDF_VERSION_MAJOR}.${IDF_VERSION_MINOR}.${IDF_VERSION_PATCH}")

if(NOT PYTHON)
    find_program(PYTHON NAMES python3 python REQUIRED)
endif()
set(__IDF_SIM_TOOLS "${IDF_PATH}/tools/idf_sim")
# Cache entries idf.py always passes (as with ESP-IDF); ccache is never used by the stand-in.
set(__idf_sim_passed "${ESP_PLATFORM}${PYTHON_DEPS_CHECKED}${CCACHE_ENABLE}")

# idf_component_register(SRCS ... INCLUDE_DIRS ... PRIV_INCLUDE_DIRS ... REQUIRES ... PRIV_REQUIRES ...)
function(idf_component_register)
    cmake_parse_arguments(_ "WHOLE_ARCHIVE" "KCONFIG;KCONFIG_PROJBUILD"
        "SRCS;SRC_DIRS;EXCLUDE_SRCS;INCLUDE_DIRS;PRIV_INCLUDE_DIRS;REQUIRES;PRIV_REQUIRES;LDFRAGMENTS;EMBED_FILES;EMBED_TXTFILES"
        ${ARGN})
    set(name "${COMPONENT_NAME}")
    set(lib "__idf_${name}")
    set(srcs "")
    foreach(s IN LISTS __SRCS)
        get_filename_component(abs "${s}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(APPEND srcs "${abs}")
    endforeach()
    foreach(d IN LISTS __SRC_DIRS)
        file(GLOB found "${CMAKE_CURRENT_SOURCE_DIR}/${d}/*.c")
        list(APPEND srcs ${found})
    endforeach()
    foreach(s IN LISTS __EXCLUDE_SRCS)
        get_filename_component(abs "${s}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(REMOVE_ITEM srcs "${abs}")
    endforeach()
    set(incs "")
    foreach(d IN LISTS __INCLUDE_DIRS)
        get_filename_component(abs "${d}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(APPEND incs "${abs}")
    endforeach()
    set(priv_incs "")
    foreach(d IN LISTS __PRIV_INCLUDE_DIRS)
        get_filename_component(abs "${d}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(APPEND priv_incs "${abs}")
    endforeach()

    get_property(project_comps GLOBAL PROPERTY __IDF_SIM_PROJECT_COMPONENTS)
    get_property(idf_comps GLOBAL PROPERTY __IDF_SIM_IDF_COMPONENTS)
    foreach(r IN LISTS __REQUIRES __PRIV_REQUIRES)
        if(NOT r IN_LIST project_comps AND NOT r IN_LIST idf_comps)
            message(FATAL_ERROR "Failed to resolve component '${r}' required by component '${name}'.")
        endif()
    endforeach()

    if(srcs)
        add_library(${lib} STATIC ${srcs})
        set_target_properties(${lib} PROPERTIES OUTPUT_NAME "${name}" LINK_INTERFACE_MULTIPLICITY 3)
        target_include_directories(${lib} PUBLIC ${incs})
        if(priv_incs)
            target_include_directories(${lib} PRIVATE ${priv_incs})
        endif()
        target_link_libraries(${lib} PUBLIC __idf_sim_sdk_headers)
        set(scope PUBLIC)
        set(pscope PRIVATE)
    else()
        add_library(${lib} INTERFACE)
        target_include_directories(${lib} INTERFACE ${incs})
        target_link_libraries(${lib} INTERFACE __idf_sim_sdk_headers)
        set(scope INTERFACE)
        set(pscope INTERFACE)
    endif()
    foreach(r IN LISTS __REQUIRES)
        if(r IN_LIST project_comps)
            target_link_libraries(${lib} ${scope} __idf_${r})
        endif()
    endforeach()
    foreach(r IN LISTS __PRIV_REQUIRES)
        if(r IN_LIST project_comps)
            target_link_libraries(${lib} ${pscope} __idf_${r})
        endif()
    endforeach()
    # Like ESP-IDF, `main` without REQUIRES sees every project component.
    if(name STREQUAL "main" AND NOT __REQUIRES AND NOT __PRIV_REQUIRES)
        foreach(c IN LISTS project_comps)
            if(NOT c STREQUAL "main")
                target_link_libraries(${lib} ${scope} __idf_${c})
            endif()
        endforeach()
    endif()

    set_property(GLOBAL APPEND PROPERTY __IDF_SIM_REGISTERED ${name})
    set_property(GLOBAL PROPERTY __IDF_SIM_${name}_INFO
        "${name}\t${CMAKE_CURRENT_SOURCE_DIR}\t${lib}\t${__REQUIRES}\t${__PRIV_REQUIRES}\t${srcs}\t${incs}")
    set_property(GLOBAL PROPERTY __IDF_SIM_${name}_SRCS ${srcs})
    if(srcs)
        set_property(GLOBAL PROPERTY __IDF_SIM_${name}_HAS_LIB 1)
    endif()
    set(COMPONENT_LIB ${lib} PARENT_SCOPE)
    set(COMPONENT_TARGET ${lib} PARENT_SCOPE)
endfunction()

# Real ESP-IDF helpers a component CMakeLists.txt may call; accepted and mostly no-ops here.
function(idf_build_get_property var prop)
    if(prop STREQUAL "IDF_TARGET")
        set(${var} "${IDF_TARGET}" PARENT_SCOPE)
    elseif(prop STREQUAL "IDF_PATH")
        set(${var} "${IDF_PATH}" PARENT_SCOPE)
    elseif(prop STREQUAL "PROJECT_NAME")
        set(${var} "${CMAKE_PROJECT_NAME}" PARENT_SCOPE)
    elseif(prop STREQUAL "BUILD_DIR")
        set(${var} "${CMAKE_BINARY_DIR}" PARENT_SCOPE)
    else()
        set(${var} "" PARENT_SCOPE)
    endif()
endfunction()
function(idf_build_set_property)
endfunction()

function(__idf_sim_pyconf)
    # Run confgen: resolves the target, merges Kconfig defaults/sdkconfig.defaults/sdkconfig,
    # writes sdkconfig and build/config/sdkconfig.{h,cmake,json}.
    execute_process(
        COMMAND "${PYTHON}" "${__IDF_SIM_TOOLS}/confgen_sim.py"
            --idf-path "${IDF_PATH}"
            --project-dir "${CMAKE_SOURCE_DIR}"
            --sdkconfig "${SDKCONFIG}"
            --defaults "${SDKCONFIG_DEFAULTS}"
            --target "${IDF_TARGET}"
            --env-target "$ENV{IDF_TARGET}"
            --component-dirs "${__IDF_SIM_ALL_COMPONENT_DIRS}"
            --config-dir "${CMAKE_BINARY_DIR}/config"
        RESULT_VARIABLE rc
        ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        string(STRIP "${err}" err)
        message(FATAL_ERROR "${err}")
    elseif(err)
        message(WARNING "${err}")
    endif()
endfunction()

macro(project project_name)
    set(CMAKE_USER_MAKE_RULES_OVERRIDE_C "${__IDF_SIM_TOOLS}/rules_override.cmake")
    _project(${project_name} C)
    set(PROJECT_NAME "${project_name}")

    if(NOT DEFINED SDKCONFIG)
        set(SDKCONFIG "${CMAKE_SOURCE_DIR}/sdkconfig")
    endif()
    if(NOT DEFINED SDKCONFIG_DEFAULTS AND DEFINED ENV{SDKCONFIG_DEFAULTS})
        set(SDKCONFIG_DEFAULTS "$ENV{SDKCONFIG_DEFAULTS}")
    endif()

    # ---- component discovery
    set(__idf_sim_idf_comps "")
    set(__idf_sim_idf_dirs "")
    file(GLOB __idf_sim_children LIST_DIRECTORIES true "${IDF_PATH}/components/*")
    list(SORT __idf_sim_children)
    foreach(d IN LISTS __idf_sim_children)
        if(IS_DIRECTORY "${d}" AND EXISTS "${d}/CMakeLists.txt")
            get_filename_component(n "${d}" NAME)
            list(APPEND __idf_sim_idf_comps ${n})
            list(APPEND __idf_sim_idf_dirs "${d}")
        endif()
    endforeach()
    set(__idf_sim_proj_comps "")
    set(__idf_sim_proj_dirs "")
    file(GLOB __idf_sim_children LIST_DIRECTORIES true CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/components/*")
    list(SORT __idf_sim_children)
    set(__idf_sim_cands ${EXTRA_COMPONENT_DIRS} ${__idf_sim_children} "${CMAKE_SOURCE_DIR}/main")
    foreach(d IN LISTS __idf_sim_cands)
        get_filename_component(d "${d}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")
        if(IS_DIRECTORY "${d}" AND EXISTS "${d}/CMakeLists.txt")
            get_filename_component(n "${d}" NAME)
            list(APPEND __idf_sim_proj_comps ${n})
            list(APPEND __idf_sim_proj_dirs "${d}")
        endif()
    endforeach()
    set_property(GLOBAL PROPERTY __IDF_SIM_PROJECT_COMPONENTS ${__idf_sim_proj_comps})
    set_property(GLOBAL PROPERTY __IDF_SIM_IDF_COMPONENTS ${__idf_sim_idf_comps})
    set(__IDF_SIM_ALL_COMPONENT_DIRS ${__idf_sim_idf_dirs} ${__idf_sim_proj_dirs})

    # ---- configuration (sdkconfig)
    __idf_sim_pyconf()
    include("${CMAKE_BINARY_DIR}/config/sdkconfig.cmake")
    set(IDF_TARGET "${CONFIG_IDF_TARGET}" CACHE STRING "IDF Build Target" FORCE)
    set(IDF_TARGET_ARCH "${CONFIG_IDF_TARGET_ARCH}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${SDKCONFIG}" "${IDF_PATH}/tools/cmake/version.cmake")
    foreach(d IN LISTS __IDF_SIM_ALL_COMPONENT_DIRS)
        foreach(k Kconfig Kconfig.projbuild)
            if(EXISTS "${d}/${k}")
                set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${d}/${k}")
            endif()
        endforeach()
    endforeach()
    if(EXISTS "${CMAKE_SOURCE_DIR}/sdkconfig.defaults")
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/sdkconfig.defaults")
    endif()
    if(EXISTS "${CMAKE_SOURCE_DIR}/version.txt")
        file(STRINGS "${CMAKE_SOURCE_DIR}/version.txt" PROJECT_VER LIMIT_COUNT 1)
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/version.txt")
    elseif(NOT DEFINED PROJECT_VER)
        set(PROJECT_VER "1")
    endif()

    message(STATUS "Building ESP-IDF components for target ${IDF_TARGET}")
    message(STATUS "Project sdkconfig file ${SDKCONFIG}")
    message(STATUS "App \"${PROJECT_NAME}\" version: ${PROJECT_VER}")

    # ---- compile settings shared by every component
    add_compile_options(-ffunction-sections -fdata-sections -Wall -Wextra -Wno-unused-parameter
        -Wno-sign-compare -Wno-enum-conversion -ggdb -Og -fno-common -fdiagnostics-color=always
        $<$<COMPILE_LANGUAGE:C>:-std=gnu17>)
    add_compile_definitions(ESP_PLATFORM "IDF_VER=\"${IDF_VER}\"" _GNU_SOURCE)
    add_library(__idf_sim_sdk_headers INTERFACE)
    target_include_directories(__idf_sim_sdk_headers INTERFACE "${CMAKE_BINARY_DIR}/config")
    foreach(d IN LISTS __idf_sim_idf_dirs)
        if(IS_DIRECTORY "${d}/include")
            target_include_directories(__idf_sim_sdk_headers INTERFACE "${d}/include")
        endif()
    endforeach()

    # ---- components: ESP-IDF's first, then the project's (each under build/esp-idf/<name>)
    set(__idf_sim_i 0)
    foreach(COMPONENT_DIR IN LISTS __idf_sim_idf_dirs __idf_sim_proj_dirs)
        get_filename_component(COMPONENT_NAME "${COMPONENT_DIR}" NAME)
        set(COMPONENT_PATH "${COMPONENT_DIR}")
        add_subdirectory("${COMPONENT_DIR}" "${CMAKE_BINARY_DIR}/esp-idf/${COMPONENT_NAME}")
    endforeach()
    get_property(__idf_sim_registered GLOBAL PROPERTY __IDF_SIM_REGISTERED)
    list(SORT __idf_sim_registered)
    list(JOIN __idf_sim_registered " " __idf_sim_msg)
    message(STATUS "Components: ${__idf_sim_msg}")
    list(JOIN __IDF_SIM_ALL_COMPONENT_DIRS " " __idf_sim_msg)
    message(STATUS "Component paths: ${__idf_sim_msg}")

    # ---- the application executable
    set(__idf_sim_elf "${PROJECT_NAME}.elf")
    set(__idf_sim_elf_src "${CMAKE_BINARY_DIR}/project_elf_src_${IDF_TARGET}.c")
    configure_file("${IDF_PATH}/components/esp_system/port/project_elf_src.c.in" "${__idf_sim_elf_src}" COPYONLY)
    add_executable(${__idf_sim_elf} "${__idf_sim_elf_src}")
    target_link_libraries(${__idf_sim_elf} PRIVATE __idf_sim_sdk_headers)
    set(__idf_sim_comp_file "${CMAKE_BINARY_DIR}/config/components.tsv")
    set(__idf_sim_comp_text "")
    foreach(c IN LISTS __idf_sim_proj_comps __idf_sim_idf_comps)
        get_property(info GLOBAL PROPERTY __IDF_SIM_${c}_INFO)
        get_property(has_lib GLOBAL PROPERTY __IDF_SIM_${c}_HAS_LIB)
        if(has_lib)
            target_link_libraries(${__idf_sim_elf} PRIVATE __idf_${c})
        endif()
        if(info)
            if(c IN_LIST __idf_sim_proj_comps)
                string(APPEND __idf_sim_comp_text "${info}\tproject\n")
            else()
                string(APPEND __idf_sim_comp_text "${info}\tidf\n")
            endif()
        endif()
    endforeach()
    file(WRITE "${__idf_sim_comp_file}.tmp" "${__idf_sim_comp_text}")
    file(COPY_FILE "${__idf_sim_comp_file}.tmp" "${__idf_sim_comp_file}" ONLY_IF_DIFFERENT)
    target_link_options(${__idf_sim_elf} PRIVATE "-Wl,-Map=${CMAKE_BINARY_DIR}/${PROJECT_NAME}.map")
    set_target_properties(${__idf_sim_elf} PROPERTIES LINK_DEPENDS_NO_SHARED 1)

    # ---- description files (project_description.json, flasher_args.json, flash_args, ...)
    set(__idf_sim_pt_csv "${IDF_PATH}/components/partition_table/${CONFIG_PARTITION_TABLE_FILENAME}")
    if(CONFIG_PARTITION_TABLE_CUSTOM AND EXISTS "${CMAKE_SOURCE_DIR}/${CONFIG_PARTITION_TABLE_CUSTOM_FILENAME}")
        set(__idf_sim_pt_csv "${CMAKE_SOURCE_DIR}/${CONFIG_PARTITION_TABLE_CUSTOM_FILENAME}")
    endif()
    set(__idf_sim_defaults_used "")
    if(SDKCONFIG_DEFAULTS)
        set(__idf_sim_defaults_used "${SDKCONFIG_DEFAULTS}")
    elseif(EXISTS "${CMAKE_SOURCE_DIR}/sdkconfig.defaults")
        set(__idf_sim_defaults_used "${CMAKE_SOURCE_DIR}/sdkconfig.defaults")
    endif()
    execute_process(
        COMMAND "${PYTHON}" "${__IDF_SIM_TOOLS}/projdesc_sim.py"
            --idf-path "${IDF_PATH}" --project-dir "${CMAKE_SOURCE_DIR}" --project-name "${PROJECT_NAME}"
            --project-ver "${PROJECT_VER}" --build-dir "${CMAKE_BINARY_DIR}" --sdkconfig "${SDKCONFIG}"
            --defaults "${__idf_sim_defaults_used}" --target "${IDF_TARGET}"
            --components-file "${__idf_sim_comp_file}" --c-compiler "${CMAKE_C_COMPILER}"
            --partition-csv "${__idf_sim_pt_csv}"
        RESULT_VARIABLE __idf_sim_rc)
    if(NOT __idf_sim_rc EQUAL 0)
        message(FATAL_ERROR "Failed to write project_description.json")
    endif()

    if(NOT IDF_TARGET STREQUAL "linux")
        set(__idf_sim_esptool "${__IDF_SIM_TOOLS}/esptool_sim.py")
        set(__idf_sim_flash --idf-path "${IDF_PATH}" --chip "${IDF_TARGET}"
            --flash-mode "${CONFIG_ESPTOOLPY_FLASHMODE}" --flash-freq "${CONFIG_ESPTOOLPY_FLASHFREQ}"
            --flash-size "${CONFIG_ESPTOOLPY_FLASHSIZE}")
        set(__idf_sim_bin "${CMAKE_BINARY_DIR}/${PROJECT_NAME}.bin")
        add_custom_command(OUTPUT "${__idf_sim_bin}"
            COMMAND "${PYTHON}" "${__idf_sim_esptool}" elf2image ${__idf_sim_flash}
                --project-name "${PROJECT_NAME}" --project-ver "${PROJECT_VER}" --idf-ver "${IDF_VER}"
                -o "${__idf_sim_bin}" "${CMAKE_BINARY_DIR}/${__idf_sim_elf}"
            DEPENDS ${__idf_sim_elf}
            COMMENT "Generating binary image from built executable"
            VERBATIM)
        add_custom_target(gen_project_binary DEPENDS "${__idf_sim_bin}")
        add_custom_target(app ALL DEPENDS gen_project_binary)

        set(__idf_sim_pt_bin "${CMAKE_BINARY_DIR}/partition_table/partition-table.bin")
        file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/esp-idf/partition_table" "${CMAKE_BINARY_DIR}/esp-idf/esptool_py")
        add_custom_command(OUTPUT "${__idf_sim_pt_bin}"
            COMMAND "${PYTHON}" "${__idf_sim_esptool}" partition-table --offset "${CONFIG_PARTITION_TABLE_OFFSET}"
                --flash-size "${CONFIG_ESPTOOLPY_FLASHSIZE}" -o "${__idf_sim_pt_bin}" "${__idf_sim_pt_csv}"
            DEPENDS "${__idf_sim_pt_csv}" "${SDKCONFIG}"
            WORKING_DIRECTORY "${CMAKE_BINARY_DIR}/esp-idf/partition_table"
            COMMENT "Generating ../../partition_table/partition-table.bin"
            VERBATIM)
        add_custom_target(partition_table_bin ALL DEPENDS "${__idf_sim_pt_bin}")
        add_custom_target(partition-table DEPENDS partition_table_bin)

        add_custom_target(app_check_size ALL
            COMMAND "${PYTHON}" "${__idf_sim_esptool}" check-size --partition-table "${__idf_sim_pt_bin}"
                "${__idf_sim_bin}"
            WORKING_DIRECTORY "${CMAKE_BINARY_DIR}/esp-idf/esptool_py"
            VERBATIM)
        add_dependencies(app_check_size gen_project_binary partition_table_bin)

        # The bootloader: a small executable of its own, turned into bootloader/bootloader.bin by an
        # always-run step (real ESP-IDF builds it as an external project, also always run).
        add_subdirectory("${IDF_PATH}/components/bootloader/subproject" "${CMAKE_BINARY_DIR}/bootloader")
        set(__idf_sim_first_src "")
        get_property(__idf_sim_main_srcs GLOBAL PROPERTY __IDF_SIM_main_SRCS)
        if(__idf_sim_main_srcs)
            list(GET __idf_sim_main_srcs 0 __idf_sim_first_src)
        endif()
        add_custom_target(bootloader ALL
            COMMAND "${PYTHON}" "${__idf_sim_esptool}" bootloader-step ${__idf_sim_flash}
                --partition-offset "${CONFIG_PARTITION_TABLE_OFFSET}"
                --bootloader-offset "${CONFIG_BOOTLOADER_OFFSET_IN_FLASH}"
                --source-file "${__idf_sim_first_src}"
                -o "${CMAKE_BINARY_DIR}/bootloader/bootloader.bin" "${CMAKE_BINARY_DIR}/bootloader/bootloader.elf"
            BYPRODUCTS "${CMAKE_BINARY_DIR}/bootloader/bootloader.bin"
            COMMENT "Performing build step for 'bootloader'"
            USES_TERMINAL
            VERBATIM)
        add_dependencies(bootloader bootloader_elf)
    endif()
endmacro()
