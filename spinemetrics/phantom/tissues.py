"""Tissue sub-labels of the phantom (for image synthesis only; never in the contract maps).

The phantom paints the semantic label and the tissue independently (cortical bone is
tissue ``CORTEX`` in vertebral bodies, posterior elements and sacrum alike).
:data:`TISSUE_TO_LABEL` gives the *usual* label of each tissue, used only when a tissue map
has to be guessed from a semantic map. The synthesiser draws one mean intensity per tissue
and contrast (see :mod:`spinemetrics.phantom.synth`).
"""

from __future__ import annotations

import numpy as np

AIR = 0
SUBCUT_FAT = 1
SOFT = 2  # visceral / other soft tissue, split into random blobs by the synthesiser
BOWEL = 3
KIDNEY = 4
CORTEX = 5
MARROW = 6
PE_BONE = 7
ANNULUS = 8
NUCLEUS = 9
CSF = 10
CORD = 11
ROOT = 12
EPIDURAL_FAT = 13
LF = 14
MUSCLE = 15
ARTERY = 16
VEIN = 17
NUCLEUS_DEGEN = 18
SACRAL_MARROW = 19
PE_MARROW = 20
OTHER_CORTEX = 21  # ilium, ribs (label 0: bone that is not spine)
OTHER_MARROW = 22
LIVER = 23
SPLEEN = 24
MODIC = 25  # oedema / fatty marrow band next to a degenerate disc (label 1)
HEMANGIOMA = 26  # focal fatty lesion inside a body (label 1)
CAUDA = 27  # cauda equina strands inside the thecal sac (label 5)
LIGAMENT = 28  # anterior / posterior longitudinal ligament (label 0)
N_TISSUES = 29

NAMES = {
    AIR: "air",
    SUBCUT_FAT: "subcutaneous_fat",
    SOFT: "soft_tissue",
    BOWEL: "bowel",
    KIDNEY: "kidney",
    CORTEX: "cortical_bone",
    MARROW: "vertebral_marrow",
    PE_BONE: "posterior_element_cortex",
    ANNULUS: "annulus",
    NUCLEUS: "nucleus",
    CSF: "csf",
    CORD: "cord",
    ROOT: "nerve_root",
    EPIDURAL_FAT: "epidural_fat",
    LF: "ligamentum_flavum",
    MUSCLE: "muscle",
    ARTERY: "artery",
    VEIN: "vein",
    NUCLEUS_DEGEN: "degenerated_nucleus",
    SACRAL_MARROW: "sacral_marrow",
    PE_MARROW: "posterior_element_marrow",
    OTHER_CORTEX: "other_bone_cortex",
    OTHER_MARROW: "other_bone_marrow",
    LIVER: "liver",
    SPLEEN: "spleen",
    MODIC: "modic_marrow",
    HEMANGIOMA: "hemangioma",
    CAUDA: "cauda_equina",
    LIGAMENT: "longitudinal_ligament",
}

#: contract label of each tissue (index = tissue id)
TISSUE_TO_LABEL = np.zeros(N_TISSUES, dtype=np.uint8)
TISSUE_TO_LABEL[[CORTEX, MARROW]] = 1
TISSUE_TO_LABEL[[PE_BONE, PE_MARROW]] = 2
TISSUE_TO_LABEL[[SACRAL_MARROW]] = 3
TISSUE_TO_LABEL[[ANNULUS, NUCLEUS, NUCLEUS_DEGEN]] = 4
TISSUE_TO_LABEL[CSF] = 5
TISSUE_TO_LABEL[CORD] = 6
TISSUE_TO_LABEL[ROOT] = 7
TISSUE_TO_LABEL[EPIDURAL_FAT] = 8
TISSUE_TO_LABEL[LF] = 9
TISSUE_TO_LABEL[MUSCLE] = 10
TISSUE_TO_LABEL[[ARTERY, VEIN]] = 11
