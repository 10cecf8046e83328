"""Face side of the 2-D pipeline: landmarks, cropping, alignment, 3DMM extraction and paste-back.

Data flows image -> landmarks (:mod:`.landmarks`) -> crop (:mod:`.preprocess`) -> 5-point alignment
(:mod:`.align`) -> ResNet-50 recon net (:mod:`.recon_net`) -> the 73-value first-frame row
(:mod:`.extract`); rendered frames go back into the photo with :mod:`.paste`.
"""
